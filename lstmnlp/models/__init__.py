"""Models and the one place that maps a config to a model class."""

from __future__ import annotations

from torch import nn

from lstmnlp.config import ExperimentConfig


def build_model(config: ExperimentConfig, *, vocab_size: int, pad_id: int) -> nn.Module:
    """The model for `config.task`."""
    if config.task == "lm":
        from lstmnlp.models.language_model import LanguageModel

        return LanguageModel(config.model, vocab_size=vocab_size, pad_id=pad_id)
    raise ValueError(f"unknown task {config.task!r}")
