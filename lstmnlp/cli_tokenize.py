"""`lstmnlp tokenize`: train and apply sentencepiece tokenizers."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from lstmnlp.cli_io import console, read_input_lines, user_errors, write_output_lines
from lstmnlp.errors import UserError

tokenize_app = typer.Typer(help="Train and apply sentencepiece tokenizers.", no_args_is_help=True)


@tokenize_app.command("train")
@user_errors
def tokenize_train(
    files: List[Path] = typer.Argument(..., help="Text files, one sentence per line."),
    prefix: Path = typer.Option(..., "--prefix", help="Writes PREFIX.model and PREFIX.vocab."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="Number of pieces (an upper bound for char)."),
    model_type: str = typer.Option("unigram", "--model-type", help="bpe, unigram, char or word."),
    character_coverage: float = typer.Option(0.9995, "--character-coverage",
                                             help="Share of characters the vocabulary must cover."),
    byte_fallback: bool = typer.Option(False, "--byte-fallback", help="Spell unknown characters as bytes."),
    user_defined_symbols: str = typer.Option("", "--user-defined-symbols",
                                             help="Comma-separated pieces always kept whole."),
) -> None:
    """Train a sentencepiece model (pad 0, unk 1, bos 2, eos 3)."""
    from lstmnlp.tokenizer import train_tokenizer

    symbols = [s for s in user_defined_symbols.split(",") if s]
    report = train_tokenizer(files, prefix, vocab_size=vocab_size, model_type=model_type,
                             character_coverage=character_coverage, byte_fallback=byte_fallback,
                             user_defined_symbols=symbols)
    table = Table(title=f"tokenizer {report.model_path}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("model type", model_type)
    table.add_row("vocabulary size", f"{report.vocab_size:,}")
    table.add_row("characters covered", f"{100 * report.character_coverage:.3f}%")
    table.add_row(f"mean pieces per line ({report.lines_sampled:,} lines)", f"{report.mean_pieces_per_line:.2f}")
    table.add_row("training time", f"{report.seconds:.1f} s")
    console.print(table)


@tokenize_app.command("encode")
@user_errors
def tokenize_encode(
    model: Path = typer.Option(..., "--model", help="A .model file from `lstmnlp tokenize train`."),
    ids: bool = typer.Option(False, "--ids", help="Print ids instead of pieces."),
    input: Optional[Path] = typer.Option(None, "--input", help="Input file (default: stdin)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Output file (default: stdout)."),
) -> None:
    """Text to pieces (or ids), one line in, one line out."""
    from lstmnlp.tokenizer import Tokenizer

    tokenizer = Tokenizer(model)
    lines = read_input_lines(input)
    if ids:
        encoded = [" ".join(map(str, row)) for row in tokenizer.encode_batch(lines)]
    else:
        encoded = [" ".join(tokenizer.pieces(line)) for line in lines]
    write_output_lines(output, encoded)


@tokenize_app.command("decode")
@user_errors
def tokenize_decode(
    model: Path = typer.Option(..., "--model", help="A .model file from `lstmnlp tokenize train`."),
    input: Optional[Path] = typer.Option(None, "--input", help="Pieces or ids, space separated (default: stdin)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Output file (default: stdout)."),
) -> None:
    """Pieces (or ids) back to text, one line in, one line out."""
    from lstmnlp.tokenizer import Tokenizer

    tokenizer = Tokenizer(model)
    decoded = []
    for number, line in enumerate(read_input_lines(input), start=1):
        tokens = line.split(" ") if line else []
        if tokens and all(t.isdigit() for t in tokens):
            values = [int(t) for t in tokens]
            if max(values) >= tokenizer.vocab_size:
                raise UserError(f"{input or '<stdin>'}:{number}: id {max(values)} is outside the vocabulary "
                                f"of {tokenizer.vocab_size}")
            decoded.append(tokenizer.decode(values))
        else:
            decoded.append(tokenizer.processor.decode_pieces(tokens))
    write_output_lines(output, decoded)
