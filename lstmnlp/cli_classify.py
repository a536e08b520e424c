"""`lstmnlp classify`, and the classification side of `lstmnlp evaluate RUN_DIR` and `train --cv`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lstmnlp.cli_io import console, map_lines, user_errors
from lstmnlp.errors import UserError


@user_errors
def classify(
    run_dirs: list[Path] = typer.Argument(..., help="Run directory of a classifier; several: an ensemble.",
                                          metavar="RUN_DIR..."),
    input: Optional[Path] = typer.Option(None, "--input", help="Texts, one a line (default: stdin)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Output file (default: stdout)."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object a line: label and every class's probability."),
    batch_size: int = typer.Option(64, "--batch-size", help="Texts classified together."),
    nbsvm: bool = typer.Option(True, "--nbsvm/--no-nbsvm", help="Mix in the run's NBSVM where it has one "
                               "(model.nbsvm_ngrams); --no-nbsvm: the BiLSTM alone."),
) -> None:
    """Label texts with a trained classifier: one line in, one label out, input order kept."""
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    from lstmnlp.ensemble import classifier_labels, load_runs, predict_ensemble

    runs = load_runs(run_dirs, expected_task="classify")
    if output is not None and not output.parent.exists():
        raise UserError(f"{output.parent}: output directory does not exist")
    labels = classifier_labels(runs)

    def render(lines: list[str]) -> list[str]:
        rendered = []
        for row in predict_ensemble(runs, lines, batch_size=batch_size, use_nbsvm=nbsvm).tolist():
            best = labels[max(range(len(row)), key=row.__getitem__)]
            probabilities = dict(zip(labels, (round(p, 6) for p in row)))
            rendered.append(json.dumps({"label": best, "probabilities": probabilities}, ensure_ascii=False)
                            if json_output else best)
        return rendered

    map_lines(input, output, render)


def read_gold(loaded, input: Path, labels: Optional[Path]) -> tuple[list[str], list[str]]:
    """Texts and gold labels: `--input` lines with `--labels` lines, or one labeled file
    (.tsv/.csv/.jsonl with the run's columns, or SST trees for an SST run)."""
    from lstmnlp.data import read_labeled, read_lines, read_sst

    data = loaded.config.data
    if labels is not None:
        texts, gold = read_lines(input), [label.strip() for label in read_lines(labels)]
        if len(texts) != len(gold):
            raise UserError(f"{input} has {len(texts):,} lines but {labels} has {len(gold):,}: "
                            "one label per text")
        return texts, gold
    if input.suffix.lower() in (".tsv", ".csv", ".jsonl", ".json"):
        labeled = read_labeled(input, text_column=data.text_column, label_column=data.label_column)
    elif data.format == "sst":
        from lstmnlp.classification_data import SST_LABELS

        labeled = read_sst(input, label_names=SST_LABELS[data.sst_labels])
    else:
        raise UserError(f"{input}: give the gold labels with --labels FILE (one per line), or a .tsv/.csv/.jsonl file")
    return labeled.texts, labeled.labels


def evaluate_classifier(run_dirs: list[Path], input: Optional[Path], labels: Optional[Path],
                        json_output: bool, *, use_nbsvm: bool = True) -> None:
    """Accuracy, macro-F1 and a confusion matrix of a classifier (or an ensemble) on labeled text."""
    from lstmnlp.classification import evaluate_run
    from lstmnlp.ensemble import load_runs

    if input is None:
        raise UserError("evaluate RUN_DIR needs --input FILE (and --labels FILE unless the input is labeled)")
    runs = load_runs(run_dirs, expected_task="classify")
    texts, gold = read_gold(runs[0], input, labels)
    result = evaluate_run(runs, texts, gold, use_nbsvm=use_nbsvm)
    if json_output:
        print(json.dumps(result.as_dict()))
        return
    console.print(f"accuracy {result.accuracy:.2f}%  macro-F1 {result.macro_f1:.2f}  ({len(texts):,} examples)",
                  highlight=False)
    table = Table(title="confusion matrix (rows: gold, columns: predicted)")
    table.add_column("gold \\ predicted")
    for name in result.labels:
        table.add_column(name, justify="right")
    for gold_index, (name, row) in enumerate(zip(result.labels, result.confusion)):
        table.add_row(name, *(f"[bold]{n}[/bold]" if gold_index == j else str(n) for j, n in enumerate(row)))
    console.print(table)


def run_cross_validation(config, run_dir: Path, folds: int, make_reporter, resume: bool = False) -> None:
    """`lstmnlp train RECIPE --cv K [--resume]`: train K folds and print their test accuracies."""
    from lstmnlp.cross_validation import cross_validate

    summary = cross_validate(config, run_dir, folds, resume=resume, make_reporter=make_reporter,
                             log=lambda text: console.print(text, highlight=False))
    table = Table(title=f"{folds}-fold cross-validation")
    table.add_column("fold")
    table.add_column("test accuracy %", justify="right")
    for number, accuracy in enumerate(summary.fold_accuracies, start=1):
        table.add_row(str(number), f"{accuracy:.2f}")
    table.add_row("[bold]mean ± std[/bold]", f"[bold]{summary.mean:.2f} ± {summary.stdev:.2f}[/bold]")
    console.print(table)
    console.print(f"{summary.run_dir / 'cv.json'}  ({summary.elapsed_s:.0f} s)", highlight=False)
