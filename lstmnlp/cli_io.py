"""What every CLI command shares: the consoles, the user-error wrapper, line input and output."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from lstmnlp.errors import Interrupted, UserError

console = Console()
error_console = Console(stderr=True)


def user_errors(command: Callable) -> Callable:
    """Turn a UserError into one red line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as error:
            error_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Interrupted as stop:
            error_console.print(f"[yellow]{stop}[/yellow]", highlight=False, soft_wrap=True)
            raise typer.Exit(stop.exit_code) from None
        except KeyboardInterrupt:
            error_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            sys.stderr.close()
            raise typer.Exit(0) from None

    return wrapper


# ---------------------------------------------------------------- text in and out


def check_no_repeat_ngram_size(size: int) -> None:
    """--no-repeat-ngram-size, the same rule for every command that decodes."""
    if size < 0:
        raise UserError("--no-repeat-ngram-size must not be negative (0: no blocking)")


def read_input_lines(path: Optional[Path]) -> list[str]:
    """Lines from a file or stdin, without line ends (LF or CRLF) or a byte-order mark."""
    from lstmnlp.data import read_lines

    if path is None:
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise UserError(f"<stdin>:{line}: not valid UTF-8") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [line.rstrip("\r") for line in lines]
    if path.is_file() and path.stat().st_size == 0:
        return []
    return read_lines(path)


def write_output_lines(path: Optional[Path], lines: list[str]) -> None:
    """Write lines to a file (atomically, so a failure never leaves half a file) or stdout."""
    from lstmnlp.checkpoint import atomic_write_text

    text = "".join(line + "\n" for line in lines)
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if not path.parent.exists():
        raise UserError(f"{path.parent}: output directory does not exist")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected an output file")
    atomic_write_text(path, text)


def map_lines(input: Optional[Path], output: Optional[Path], render: Callable[[list[str]], list[str]], *,
              interactive: bool = True) -> None:
    """Write `render(lines)` for the input lines. Typed at a terminal (stdin a terminal, no
    --input or --output), each line is answered as soon as Enter is pressed, as in
    fairseq-interactive and JoeyNMT's interactive mode; Ctrl-D ends."""
    if not (interactive and input is None and output is None and sys.stdin.isatty()):
        write_output_lines(output, render(read_input_lines(input)))
        return
    error_console.print("[dim]one text a line, answered at Enter; Ctrl-D ends[/dim]", highlight=False)
    for number, data in enumerate(iter(sys.stdin.buffer.readline, b""), start=1):
        try:
            line = data.decode("utf-8").removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError:
            raise UserError(f"<stdin>:{number}: not valid UTF-8") from None
        write_output_lines(None, render([line]))
