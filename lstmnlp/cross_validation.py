"""`lstmnlp train RECIPE --cv K`: stratified k-fold cross-validation of a classifier, resumable.

Fold i tests a model trained on the other folds (model selection on a held-out
`data.valid_fraction` of them), each fold a run in RUN/fold-NN. RUN/cv.json is written after every
fold (the accuracies so far) and completed with the mean and standard deviation at the end, so a
stopped cross-validation continues with `--resume`: finished folds are kept, the stopped fold
resumes from its checkpoint, the rest are trained. The folds and splits depend only on the data
and `train.seed`, so the resumed folds are the same folds.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lstmnlp import checkpoint
from lstmnlp.classification_data import hold_out, read_split, stratified_folds, subset
from lstmnlp.config import ExperimentConfig, dump_yaml
from lstmnlp.errors import Interrupted, UserError
from lstmnlp.train import Reporter

PROGRESS = "cv.json"


@dataclass
class CrossValidationSummary:
    run_dir: Path
    fold_accuracies: list[float]
    mean: float
    stdev: float
    elapsed_s: float  # training and testing time over all folds, across resumes


def cross_validate(config: ExperimentConfig, run_dir: Path, folds: int, *, resume: bool = False,
                   log: Callable[[str], None] = print,
                   make_reporter: Callable[[], Reporter | None] = lambda: None) -> CrossValidationSummary:
    """Train and test the `folds` folds into `run_dir` (with `resume`, the ones not finished)."""
    from lstmnlp.classification import evaluate_run, train_classifier
    from lstmnlp.ensemble import load_runs
    from lstmnlp.ensemble_training import train_members

    check_folds(folds)
    if config.data.neutral_phrases:
        raise UserError("--cv: data.neutral_phrases trains on texts no fold could test; leave it off")
    progress = _read_progress(run_dir, folds) if resume else {"folds": folds, "accuracies": [], "elapsed_s": 0.0}
    checkpoint.atomic_write_text(run_dir / checkpoint.CONFIG, dump_yaml(config))  # what --resume reads
    everything = read_split(config, config.data.train, training=True)
    parts = stratified_folds(everything.labels, folds, config.train.seed)
    ensemble = config.train.ensemble > 1  # each fold an ensemble of members
    for number, test_indices in enumerate(parts, start=1):
        if number <= len(progress["accuracies"]):
            log(f"fold {number}/{folds}: finished before, test accuracy {progress['accuracies'][number - 1]:.2f}%")
            continue
        started = time.perf_counter()
        held = set(test_indices)
        rest = subset(everything, [i for i in range(len(everything.texts)) if i not in held], f"folds except {number}")
        test = subset(everything, test_indices, f"fold {number}")
        fold_dir = run_dir / f"fold-{number:02d}"
        stopped = fold_dir.is_dir() if ensemble else checkpoint.ready_to_train(fold_dir)
        fold_dir.mkdir(exist_ok=True)
        log(f"fold {number}/{folds}: {len(rest.texts):,} training, {len(test.texts):,} test examples"
            + (" (resuming)" if stopped else ""))
        split = hold_out(rest, config.data.valid_fraction, config.train.seed)
        try:
            if ensemble:
                train_members(config, fold_dir, lambda *args, **kwargs: train_classifier(
                    *args, reporter=make_reporter(), **kwargs), log=log, data=split, resume=stopped)
            else:
                train_classifier(config, fold_dir, reporter=make_reporter(), log=log, data=split, resume=stopped)
        except Interrupted as stop:  # point at the cross-validation, not at the fold alone
            raise Interrupted(f"fold {number} of {folds} stopped, its checkpoint written; continue the "
                              f"cross-validation with --out {run_dir} --cv {folds} --resume", stop.exit_code) from None
        scores = evaluate_run(load_runs([fold_dir], expected_task="classify"), test.texts, test.labels)
        log(f"fold {number}/{folds}: test accuracy {scores.accuracy:.2f}%  macro-F1 {scores.macro_f1:.2f}")
        progress["accuracies"].append(scores.accuracy)
        progress["elapsed_s"] = round(progress["elapsed_s"] + time.perf_counter() - started, 1)
        _write_progress(run_dir, progress)
    accuracies = progress["accuracies"]
    mean, stdev = statistics.mean(accuracies), statistics.stdev(accuracies)
    _write_progress(run_dir, {**progress, "mean": mean, "stdev": stdev})
    return CrossValidationSummary(run_dir, accuracies, mean, stdev, progress["elapsed_s"])


def check_folds(folds: int) -> None:
    """Refuse fewer than 2 folds (the CLI asks before it makes a run directory)."""
    if folds < 2:
        raise UserError("--cv needs at least 2 folds")


def _read_progress(run_dir: Path, folds: int) -> dict[str, Any]:
    """A stopped cross-validation's cv.json; it must have the same number of folds."""
    path = run_dir / PROGRESS
    if not path.is_file():
        if any(run_dir.glob("fold-*")):
            return {"folds": folds, "accuracies": [], "elapsed_s": 0.0}  # stopped inside the first fold
        raise UserError(f"{run_dir}: no cross-validation to resume (no {PROGRESS} or fold-NN)")
    try:
        progress = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: damaged cross-validation record") from None
    if progress.get("folds") != folds:
        raise UserError(f"--cv {folds}: {run_dir} is a {progress.get('folds')}-fold cross-validation; "
                        f"resume it with --cv {progress.get('folds')}")
    return progress


def _write_progress(run_dir: Path, progress: dict[str, Any]) -> None:
    checkpoint.atomic_write_text(run_dir / PROGRESS, json.dumps(progress, indent=2) + "\n")
