"""`lstmnlp score`: perplexity of a text under a language model, or of reference translations
under a translation model (forced decoding)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lstmnlp.cli_io import console, error_console, read_input_lines, user_errors, write_output_lines
from lstmnlp.config import SEQ2SEQ_TASKS
from lstmnlp.errors import UserError


@user_errors
def score(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run directory of a language model or a translation model; several, or an ensemble run: "
                  "their next-token probabilities averaged."),
    input: Path = typer.Option(..., "--input", help="Text file to score (a translation run: the source)."),
    ref: Optional[Path] = typer.Option(None, "--ref", help="Translation runs: the reference translations to "
                                                            "score, aligned with --input line by line."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    quantize: str = typer.Option("", "--quantize", help="int8: score with the int8-quantized model."),
    per_line: bool = typer.Option(False, "--per-line", help="Score each line on its own: one JSON object "
                                                           "a line, in input order."),
) -> None:
    """Perplexity of a text under a trained language model, or of reference translations under a
    translation model (`--input SOURCE --ref REFERENCES`).

    A reference's tokens are its pieces and the end of sentence; its score is the log-probability
    beam search would give the same pieces."""
    import json

    from lstmnlp.ensemble import run_task

    if run_task(run_dirs[0]) in SEQ2SEQ_TASKS:
        scores, result = _score_references(run_dirs, input, ref, quantize, per_line)
    elif ref is not None:
        raise UserError("--ref is for translation runs; a language model scores --input alone")
    else:
        scores, result = _score_text(run_dirs, input, quantize, per_line)
    if scores is not None:
        write_output_lines(None, [json.dumps(line) for line in scores])
    elif json_output:
        print(json.dumps(result.as_dict()))
    else:
        _print_table(result, f"score of {ref or input}")


def _score_text(run_dirs: list[Path], path: Path, quantize: str, per_line: bool):
    """(per-line scores, None) with `per_line`, else (None, the text's score): a language model."""
    from lstmnlp.data import read_text
    from lstmnlp.ensemble import load_language_model_ensemble
    from lstmnlp.language_modeling import score_lines, score_text
    from lstmnlp.quantize import apply_quantize

    loaded = load_language_model_ensemble(run_dirs)
    model, backward = apply_quantize(loaded.model, quantize), loaded.config.model.backward
    if per_line:
        return score_lines(model, loaded.tokenizer, read_input_lines(path), backward=backward), None
    return None, score_text(model, loaded.tokenizer, read_text(path), backward=backward)


def _score_references(run_dirs: list[Path], source: Path, ref: Optional[Path], quantize: str, per_line: bool):
    """(per-line scores, None) with `per_line`, else (None, the references' corpus score)."""
    from lstmnlp.data import read_parallel
    from lstmnlp.ensemble import load_translation_ensemble
    from lstmnlp.quantize import apply_quantize
    from lstmnlp.translation_scoring import corpus_score, score_translations

    if ref is None:
        raise UserError("a translation run scores reference translations: --input SOURCE --ref REFERENCES")
    loaded = load_translation_ensemble(run_dirs, expected_task=SEQ2SEQ_TASKS)
    sources, references = read_parallel(source, ref)
    scores = score_translations(apply_quantize(loaded.model, quantize), loaded.tokenizer, loaded.target_tokenizer,
                                sources, references, max_source_length=4 * loaded.config.data.max_length,
                                warn=lambda text: error_console.print(f"[yellow]warning:[/yellow] {text}",
                                                                      highlight=False))
    if per_line:
        return scores, None
    return None, corpus_score(scores, references, character_level=loaded.target_tokenizer.is_character_level)


def _print_table(result, title: str) -> None:
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("tokens", f"{result.tokens:,}")
    table.add_row("nll per token (nats)", f"{result.nll_per_token:.4f}")
    table.add_row("perplexity", f"{result.perplexity:.3f}")
    if result.bits_per_char is not None:
        table.add_row("bits per character", f"{result.bits_per_char:.4f}")
    table.add_row("perplexity per word", f"{result.perplexity_per_word:.3f}")
    console.print(table)
