"""`lstmnlp generate`: continue a prompt with a language model, streaming, or complete each
line of a file in batches."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from lstmnlp.cli_io import check_no_repeat_ngram_size, error_console, map_lines, user_errors
from lstmnlp.errors import UserError


@user_errors
def generate(
    run_dirs: Optional[list[Path]] = typer.Argument(
        None, help="Run directory (default: the latest in ./runs); several, or an ensemble run: their "
                   "next-token probabilities averaged."),
    prompt: str = typer.Option("", "--prompt", help="Text to continue."),
    max_tokens: int = typer.Option(500, "--max-tokens", help="Tokens to generate."),
    temperature: float = typer.Option(0.8, "--temperature", help="0 is greedy."),
    top_k: int = typer.Option(0, "--top-k", help="Sample from the K most likely tokens (0: all)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (1: all)."),
    beam_size: int = typer.Option(1, "--beam-size", help="Above 1: beam search for the likeliest text."),
    num_samples: int = typer.Option(1, "--num-samples", help="How many texts to produce."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Same seed and options give the same text."),
    quantize: str = typer.Option("", "--quantize", help="int8: dynamic int8 quantization for faster CPU sampling."),
    no_repeat_ngram_size: int = typer.Option(0, "--no-repeat-ngram-size",
                                             help="N > 0: the text never repeats N tokens in a row it already holds."),
    lines: int = typer.Option(0, "--lines", help="N > 0: each text ends at the N-th line break the model writes "
                              "(beam search: 1, the likeliest rest of the line); 0: --max-tokens alone."),
    input: Optional[Path] = typer.Option(None, "--input", help="Prompts, one a line (-: stdin), completed in "
                                         "batches: each gives --num-samples lines, its line as the model ends it."),
    output: Optional[Path] = typer.Option(None, "--output", help="With --input: write the lines here."),
    batch_size: int = typer.Option(64, "--batch-size", help="With --input: prompts (and samples) at once."),
) -> None:
    """Continue a prompt with a trained language model, streaming the text; or complete each
    line of --input.

    A backward language model writes the text before the prompt."""
    _check_generate_options(max_tokens, temperature, top_k, top_p, beam_size, num_samples, lines)
    check_no_repeat_ngram_size(no_repeat_ngram_size)
    _check_input_options(input, output, batch_size, prompt, lines)
    from lstmnlp.checkpoint import latest_run
    from lstmnlp.ensemble import load_language_model_ensemble
    from lstmnlp.language_modeling import beam_generate, generate_text, with_prompt
    from lstmnlp.quantize import apply_quantize

    loaded = load_language_model_ensemble(run_dirs or [latest_run()])
    loaded.model = apply_quantize(loaded.model, quantize)
    backward = loaded.config.model.backward
    if input is not None:
        from lstmnlp.line_completion import complete_lines

        def complete(prompts: list[str]) -> list[str]:
            _warn_unknown(loaded.tokenizer, "".join(prompts))
            completed = complete_lines(loaded.model, loaded.tokenizer, prompts, max_tokens=max_tokens,
                                       temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                       beam_size=beam_size, num_samples=num_samples, backward=backward,
                                       no_repeat_ngram_size=no_repeat_ngram_size, batch_size=batch_size)
            return [line for lines_of_prompt in completed for line in lines_of_prompt]

        map_lines(None if str(input) == "-" else input, output, complete, interactive=False)
        return
    _warn_unknown(loaded.tokenizer, prompt)
    if beam_size > 1:
        results = beam_generate(loaded.model, loaded.tokenizer, prompt=prompt, max_tokens=max_tokens,
                                beam_size=beam_size, nbest=num_samples, no_repeat_ngram_size=no_repeat_ngram_size,
                                backward=backward, one_line=lines == 1)
        for number, (text, _) in enumerate(results):
            _write_sample(number, with_prompt(prompt, text, backward=backward))
        return
    for number in range(num_samples):
        if number:
            sys.stdout.write("\n")
        sys.stdout.write("" if backward else prompt)
        generate_text(loaded.model, loaded.tokenizer, prompt=prompt, max_tokens=max_tokens,
                      temperature=temperature, top_k=top_k, top_p=top_p,
                      seed=None if seed is None else seed + number, no_repeat_ngram_size=no_repeat_ngram_size,
                      on_text=_stream, backward=backward, lines=lines)
        sys.stdout.write((prompt if backward else "") + "\n")
        sys.stdout.flush()


def _warn_unknown(tokenizer, prompt: str) -> None:
    unknown = tokenizer.unknown_characters(prompt)
    if unknown:
        error_console.print(f"[yellow]warning:[/yellow] the vocabulary has no {''.join(unknown)!r}; "
                            "those characters are read as <unk>", highlight=False)


def _stream(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _write_sample(number: int, text: str) -> None:
    if number:
        sys.stdout.write("\n")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _check_generate_options(max_tokens: int, temperature: float, top_k: int, top_p: float,
                            beam_size: int, num_samples: int, lines: int = 0) -> None:
    if max_tokens < 1:
        raise UserError("--max-tokens must be at least 1")
    if temperature < 0:
        raise UserError("--temperature must not be negative (0 is greedy)")
    if top_k < 0:
        raise UserError("--top-k must not be negative")
    if not 0 < top_p <= 1:
        raise UserError("--top-p must lie in (0, 1]")
    if beam_size < 1 or num_samples < 1:
        raise UserError("--beam-size and --num-samples must be at least 1")
    if beam_size > 1 and num_samples > beam_size:
        raise UserError("--num-samples cannot exceed --beam-size with beam search")
    if lines < 0 or (beam_size > 1 and lines > 1):
        raise UserError("--lines must not be negative, and beam search ends at one line (--lines 1)")


def _check_input_options(input: Optional[Path], output: Optional[Path], batch_size: int, prompt: str,
                         lines: int) -> None:
    if input is None:
        if output is not None:
            raise UserError("--output goes with --input (without it the text streams to stdout)")
        return
    if prompt:
        raise UserError("--prompt and --input exclude each other: with --input each line is a prompt")
    if lines > 1:
        raise UserError("with --input each prompt's line is completed: --lines can only be 1")
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
