"""`lstmnlp embeddings`: a run's learned input embedding as a word-vector file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lstmnlp.cli_io import user_errors, write_output_lines

SIDES = ("source", "target")


@user_errors
def embeddings(
    run_dir: Path = typer.Argument(..., help="A trained run (an ensemble's member, a translation run, ...)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Vector file to write (default: stdout)."),
    side: str = typer.Option("source", "--side", help="Translation and autoencoder runs: source or target."),
    pieces: bool = typer.Option(False, "--pieces", help="Every piece as sentencepiece spells it, not only words."),
) -> None:
    """Write a run's input embedding as word2vec text vectors (a "COUNT DIMENSION" header).

    One line per whole-word piece, under its word, as `model.word_vectors`, gensim and fastText
    read them (so one run's embedding can start another's); `--pieces` writes every piece
    instead, word-start mark included."""
    from lstmnlp.checkpoint import load_run
    from lstmnlp.errors import UserError
    from lstmnlp.word_vectors import embedding_lines

    if side not in SIDES:
        raise UserError(f"--side must be one of {', '.join(SIDES)}")
    run = load_run(run_dir)
    if side == "target":
        if not hasattr(run.model, "decoder"):
            raise UserError(f"{run_dir}: a run of task {run.config.task!r} has one embedding; --side target "
                            "is for translation and autoencoder runs")
        weight, tokenizer = run.model.decoder.embedding.weight, run.target_tokenizer
    else:
        weight, tokenizer = run.model.encoder.embedding.weight, run.tokenizer
    lines = embedding_lines(weight, tokenizer, pieces=pieces)
    if len(lines) == 1:
        raise UserError(f"{run_dir}: its tokenizer has no whole-word pieces (a char tokenizer?); use --pieces")
    write_output_lines(out, lines)
