"""The `lstmnlp` command: each command parses, calls one library function, and renders.

torch and the models are imported inside the commands, so `lstmnlp --help` stays instant.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from lstmnlp.cli_average import average
from lstmnlp.cli_classify import classify, run_cross_validation
from lstmnlp.cli_embeddings import embeddings
from lstmnlp.cli_generate import generate
from lstmnlp.cli_inspect import inspect, plot
from lstmnlp.cli_score import score
from lstmnlp.cli_translate import evaluate, translate
from lstmnlp.cli_io import console, user_errors
from lstmnlp.cli_tokenize import tokenize_app
from lstmnlp.errors import UserError

# markdown: a docstring's paragraphs are reflowed (rich mode keeps the source's line breaks)
app = typer.Typer(help="Train, sample and evaluate LSTM sequence models.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="markdown")
app.add_typer(tokenize_app, name="tokenize")


@app.callback()
def options(threads: int = typer.Option(0, "--threads", help="CPU threads for torch (default: one per core).")) -> None:
    """Train, sample and evaluate LSTM sequence models."""
    if threads < 0:
        raise typer.BadParameter("--threads must not be negative")
    if threads:  # torch is imported later, inside the command, and reads this then
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["MKL_NUM_THREADS"] = str(threads)


DEFAULT_RECIPE = Path(__file__).parent / "recipes" / "default.yaml"


# ---------------------------------------------------------------- train


@app.command()
@user_errors
def train(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe (default: a character LM on the built-in corpus)."),
    set_: List[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.lr=0.001 (repeatable)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Read the recipe's files from DIR."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/NAME-TIME)."),
    cv: int = typer.Option(0, "--cv", help="Classification: K-fold cross-validation, one run per fold."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    nproc: int = typer.Option(1, "--nproc", help="Train data-parallel in N processes (launches torchrun)."),
) -> None:
    """Train a model from a recipe; with no recipe, a character LM on the built-in corpus (about 3 minutes)."""
    from lstmnlp.config import SEQ2SEQ_TASKS, load_config

    if nproc < 1:
        raise UserError("--nproc must be at least 1")
    if cv:
        from lstmnlp.cross_validation import check_folds

        check_folds(cv)
    overrides = list(set_) + ([f"data.dir={data_dir}"] if data_dir is not None else [])
    if resume:
        from lstmnlp.checkpoint import resumable_config

        if out is None:
            raise UserError("--resume needs --out RUN_DIR")
        config = resumable_config(out, recipe, overrides)
        from lstmnlp.ensemble_training import check_resume

        if not cv:  # a cross-validation checks its folds itself
            check_resume(out, config)
    else:
        config = load_config(recipe or DEFAULT_RECIPE, overrides)
    from lstmnlp.distributed import init_world, launch_ranks, refuse_several_processes

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        refuse_several_processes(config, cv)  # here, before torchrun reports each rank's failure
        raise typer.Exit(launch_ranks(nproc, sys.argv[1:]))
    if config.task in SEQ2SEQ_TASKS:
        from lstmnlp.translation import train_translation as train_task
    elif config.task == "classify":
        from lstmnlp.classification import train_classifier as train_task
    else:
        from lstmnlp.language_modeling import train_language_model as train_task
    if cv and config.task != "classify":
        raise UserError("--cv is for classification recipes (task: classify)")
    from lstmnlp.precision import autocast_dtype, pick_device

    autocast_dtype(config.train.precision, pick_device(config.train.device))  # refused before a run directory exists

    world = init_world()  # torchrun: one process per rank; rank 0 alone writes and prints
    if world.active:
        refuse_several_processes(config, cv)
    run_dir = _open_run_dir(world, out, resume, config.name)
    say = console.print if world.is_main else (lambda *args, **kwargs: None)
    say(f"run directory: [bold]{run_dir}[/bold]" + (" (resuming)" if resume else "")
        + (f" ({world.size} processes)" if world.active else ""))
    from lstmnlp.checkpoint import remove_unfinished

    try:
        _train_into(config, run_dir, train_task, cv=cv, resume=resume, world=world, say=say)
    except BaseException:
        if world.is_main and not resume:  # empty when this command began (create_run_dir)
            remove_unfinished(run_dir, keep_dir=out is not None)
        raise


def _train_into(config, run_dir: Path, train_task, *, cv: int, resume: bool, world, say) -> None:
    """Cross-validation, an ensemble or one run into `run_dir`, with its summary."""
    from lstmnlp.progress import make_reporter

    if cv:
        run_cross_validation(config, run_dir, cv, lambda: make_reporter(
            console, max_steps=config.train.max_steps, max_time=config.train.max_time), resume)
        return
    if config.train.ensemble > 1:
        _train_ensemble(config, run_dir, train_task, resume)
        return
    summary = _train_with_progress(train_task, config, run_dir, resume=resume, world=world,
                                   log=lambda text: say(text, highlight=False))
    if world.is_main:
        _render_train_summary(summary)


def _open_run_dir(world, out: Optional[Path], resume: bool, name: str) -> Path:
    """The run directory: --out to resume, else a new one made by rank 0 and shared with the others."""
    from lstmnlp.checkpoint import create_run_dir
    from lstmnlp.distributed import broadcast

    if resume:
        return out
    outcome: tuple[Optional[Path], str] = (None, "")
    if world.is_main:
        try:
            outcome = (create_run_dir(out, name), "")
        except UserError as error:
            outcome = (None, str(error))
    run_dir, problem = broadcast(outcome, world)
    if problem:
        raise UserError(problem)
    return run_dir


def _train_with_progress(train_task, config, run_dir: Path, **kwargs):
    """`train_task(config, run_dir, ...)` under a progress display that is closed however it ends."""
    from lstmnlp.progress import make_reporter

    reporter = make_reporter(console, max_steps=config.train.max_steps, max_time=config.train.max_time)
    try:
        return train_task(config, run_dir, reporter=reporter, **kwargs)
    finally:
        if hasattr(reporter, "close"):
            reporter.close()


def _train_ensemble(config, run_dir: Path, train_task, resume: bool) -> None:
    """`train.ensemble: N`: the members one after another, then a table of their validation
    scores and the ensemble's."""
    from lstmnlp.ensemble_training import train_members

    def train_one(member, member_dir: Path, **kwargs):
        return _train_with_progress(train_task, member, member_dir, **kwargs)

    members, metrics = train_members(config, run_dir, train_one, resume=resume,
                                     log=lambda text: console.print(text, highlight=False))
    table = Table(title=f"ensemble of {len(members)} ({run_dir})")
    table.add_column("model")
    for key in metrics:
        table.add_column(f"best {key}", justify="right")
    table.add_column("time", justify="right")
    for member in members:
        table.add_row(member.name, *(_figure(member.best_metrics.get(key, float("nan"))) for key in metrics),
                      f"{member.elapsed_s:.0f} s")
    table.add_row("[bold]ensemble[/bold]", *(f"[bold]{_figure(value)}[/bold]" for value in metrics.values()), "")
    console.print(table)


def _figure(value: float) -> str:
    """A score as the summaries print it: losses (under 10) to 4 decimals, percentages to 2."""
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _render_train_summary(summary) -> None:
    result = summary.result
    table = Table(title="training summary")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("run directory", str(summary.run_dir))
    table.add_row("parameters", f"{summary.parameters:,}")
    table.add_row("steps (epochs)", f"{result.steps:,} ({result.epochs})")
    table.add_row("stopped by", result.stop_reason)
    table.add_row("time", f"{result.elapsed_s:.0f} s")
    table.add_row("training tokens/s", f"{result.tokens_per_s:,.0f}")
    for key, value in result.best_metrics.items():
        table.add_row(f"best {key} (step {result.best_step})", f"{value:.4f}")
    nbsvm = getattr(summary, "nbsvm", None)
    if nbsvm:
        table.add_row("NBSVM alone: valid_accuracy", f"{nbsvm['valid_accuracy_nbsvm']:.4f}")
        table.add_row(f"mixed in (weight {nbsvm['mix']:g}): valid_accuracy", f"{nbsvm['valid_accuracy_mixed']:.4f}")
    console.print(table)
    console.print("[bold]sample:[/bold]")
    console.print(summary.sample, markup=False, highlight=False)


# The other commands live beside their helpers; registered here, after train and generate, so
# that `lstmnlp --help` lists them in the order a user meets them.
for command in (generate, score, translate, evaluate, classify, average, plot, inspect, embeddings):
    app.command()(command)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
