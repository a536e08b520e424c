"""`lstmnlp average`: a new run from the mean of a run's last kept checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lstmnlp.cli_io import console, user_errors


@user_errors
def average(
    run_dir: Path = typer.Argument(..., help="A run trained with train.keep_last=N (N >= 2)."),
    last: int = typer.Option(0, "--last", help="Average the N newest kept checkpoints (default: all kept)."),
    out: Optional[Path] = typer.Option(None, "--out", help="New run directory (default: RUN_DIR-avgN)."),
) -> None:
    """Average a run's last kept checkpoints into a new run directory.

    The mean of weights saved some steps apart, as fairseq's average_checkpoints.py and
    OpenNMT-py's onmt_average_models make it. The new run works with every command; the original
    is only read."""
    from lstmnlp.checkpoint_averaging import kept_checkpoints, write_averaged_run
    from lstmnlp.errors import UserError

    if last < 0 or last == 1:
        raise UserError("--last must be 0 (every kept checkpoint) or at least 2")
    paths = kept_checkpoints(run_dir, last)
    out = out or run_dir.parent / f"{run_dir.name}-avg{len(paths)}"
    write_averaged_run(run_dir, paths, out)
    console.print(f"{out}: the average of {len(paths)} checkpoints ({paths[0].stem} ... {paths[-1].stem})",
                  highlight=False)
