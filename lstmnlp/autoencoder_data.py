"""Text for a sequence autoencoder (task `autoencoder`): each line is both source and target.

A sequence autoencoder (Dai & Le 2015, arXiv:1511.01432) reads a sentence into the encoder's final
state and writes it back from that state alone (`model.attention: none`); its encoder then starts
a classifier (`model.init_from`). The files are read like a language model's: `data.train` inside
`data.dir`, validated on `data.valid` or on the last `data.valid_fraction` of the lines.
"""

from __future__ import annotations

from lstmnlp.config import ExperimentConfig
from lstmnlp.data import read_lines, resolve_data_dir
from lstmnlp.errors import UserError


def autoencoder_lines(config: ExperimentConfig) -> tuple[list[str], list[str]]:
    """(training lines, validation lines): non-blank, lower-cased when `data.lowercase` is set."""
    folder = resolve_data_dir(config.data.dir)
    if folder is None:
        raise UserError("an autoencoder reads local text files: pass --data-dir DIR")
    data = config.data

    def clean(lines: list[str]) -> list[str]:
        lines = [line.strip() for line in lines if line.strip()]
        return [line.lower() for line in lines] if data.lowercase else lines

    train = clean(read_lines(folder / data.train))
    if data.valid:
        return train, clean(read_lines(folder / data.valid))
    cut = len(train) - max(1, int(len(train) * data.valid_fraction))
    if cut < 1:
        raise UserError(f"{folder / data.train}: too few lines to hold out {data.valid_fraction:.0%} for "
                        "validation; give data.valid")
    return train[:cut], train[cut:]
