"""`train.ensemble: N`: N members trained one after another into RUN/member-K (seeds seed,
seed+1, ...; every budget applies to each member), then used as one model by `classify`,
`translate`, `evaluate`, `generate` and `score` on RUN; `members:` in the recipe gives members
settings of their own (lstmnlp.member_settings). Members after the first reuse its tokenizer
(translation and LM ensembles average next-token probabilities over one vocabulary)
and, for classifiers, the same training/validation split, so the ensemble's validation score is
a fair one. With `train.parallel_members` a classifier's members train at the same time, one
process each (lstmnlp.parallel_members), each with its own tokenizer (trained on the same texts).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lstmnlp import checkpoint
from lstmnlp.config import SEQ2SEQ_TASKS, ExperimentConfig, dump_yaml
from lstmnlp.ensemble import load_language_model_ensemble, load_runs, load_translation_ensemble, member_dirs
from lstmnlp.errors import Interrupted, UserError
from lstmnlp.member_settings import apply_settings, changes_tokenizer, settings_of


def member_config(config: ExperimentConfig, number: int, first_member: Path, *, threads: int = 0) -> ExperimentConfig:
    """Member `number` (from 1): the recipe with its own `members:` settings, its own seed and
    `threads` (0: train.threads); the first member's tokenizer unless it is the first, the
    tokenizer comes with `model.init_from`, the members train at once (train.parallel_members:
    each trains its own on the same texts), or member 1's or this member's settings change it."""
    own = apply_settings(config, number)
    train = dataclasses.replace(own.train, seed=config.train.seed + number - 1, ensemble=1,
                                parallel_members=False, threads=threads or own.train.threads)
    tokenizer = own.tokenizer
    if (number > 1 and not own.model.init_from and not config.train.parallel_members
            and not changes_tokenizer(config, 1) and not changes_tokenizer(config, number)):
        tokenizer = dataclasses.replace(tokenizer, path=str(first_member / checkpoint.TOKENIZER))
    return dataclasses.replace(own, train=train, tokenizer=tokenizer)


def member_dir(run_dir: Path, number: int) -> Path:
    """Where member `number` (from 1) of an ensemble run lives."""
    return run_dir / f"member-{number}"


def check_resume(run_dir: Path, config: ExperimentConfig) -> None:
    """`--resume` keeps a run what it is: an ensemble stays one, a single run stays single, a
    cross-validation (its folds in fold-NN) resumes only with --cv."""
    if any(run_dir.glob("fold-*")):
        raise UserError(f"{run_dir} is a cross-validation: resume it with --cv K --resume")
    ensemble = member_dir(run_dir, 1).is_dir() or (run_dir / checkpoint.ENSEMBLE).is_file()
    if ensemble != (config.train.ensemble > 1):
        what = ("an ensemble; resume it with train.ensemble of 2 or more" if ensemble
                else "a single run; it cannot become an ensemble")
        raise UserError(f"train.ensemble: {run_dir} is {what}")


@dataclass(frozen=True)
class MemberScore:
    name: str
    best_metrics: dict[str, float]
    elapsed_s: float


def train_members(config: ExperimentConfig, run_dir: Path, train_one: Callable[..., Any], *,
                  log: Callable[[str], None] = print, data: Any = None,
                  resume: bool = False) -> tuple[list[MemberScore], dict[str, float]]:
    """Train the members with `train_one(config, member_dir, log=, resume=, [data=])` (`data`: a
    classifier's (train, valid) split, passed to each member), then score the ensemble on the
    validation data. RUN/ensemble.json lists the members finished so far, so a stopped run keeps
    them usable; `resume` skips those, resumes the one that was stopped and trains the rest (a
    larger `train.ensemble` adds members). Returns each member's scores and the ensemble's."""
    if config.task == "classify" and data is None:
        from lstmnlp.classification_data import train_and_valid

        data = train_and_valid(config)  # one split for all members: seeds differ, the split must not
    extra = {"data": data} if config.task == "classify" else {}
    checkpoint.atomic_write_text(run_dir / checkpoint.CONFIG, dump_yaml(config))
    listed = resume and (run_dir / checkpoint.ENSEMBLE).is_file()
    finished = [path.name for path in member_dirs(run_dir)] if listed else []
    count = config.train.ensemble

    def list_finished(name: str) -> None:
        finished.append(name)
        checkpoint.atomic_write_text(run_dir / checkpoint.ENSEMBLE, json.dumps({"members": finished}, indent=2) + "\n")

    pending = [number for number in range(1, count + 1) if member_dir(run_dir, number).name not in finished]
    for number in pending:
        if own := settings_of(config, number):
            log(f"member {number}'s own settings: " + ", ".join(f"{key}={value}" for key, value in own.items()))
    if config.train.parallel_members and len(pending) > 1:
        _train_at_once(config, run_dir, pending, data, log, list_finished)
        pending = []
    for number in pending:
        folder = member_dir(run_dir, number)
        stopped = checkpoint.ready_to_train(folder)
        folder.mkdir(exist_ok=True)
        member = member_config(config, number, member_dir(run_dir, 1))
        log(f"ensemble member {number}/{count} (seed {member.train.seed}): {folder}"
            + (" (resuming)" if stopped else ""))
        try:
            train_one(member, folder, log=log, resume=stopped, **extra)
        except Interrupted as stop:  # point at the ensemble, not at the member alone
            raise Interrupted(f"{folder.name} of {count} stopped, its checkpoint written; continue the "
                              f"ensemble with --out {run_dir} --resume", stop.exit_code) from None
        list_finished(folder.name)
    finished.sort(key=lambda name: int(name.split("-")[1]))  # member order, however they finished
    scores = [_member_score(run_dir / name) for name in finished]
    metrics = validate_ensemble(config, run_dir, data)
    checkpoint.atomic_write_text(run_dir / checkpoint.ENSEMBLE, json.dumps(
        {"members": finished, "valid": metrics, "member_valid": [score.best_metrics for score in scores]},
        indent=2) + "\n")
    return scores, metrics


def _train_at_once(config: ExperimentConfig, run_dir: Path, numbers: list[int], data: Any,
                   log: Callable[[str], None], list_finished: Callable[[str], None]) -> None:
    """Members `numbers` at the same time, one process each (train.parallel_members)."""
    from lstmnlp.parallel_members import LOG_FILE, threads_per_member, train_at_once

    threads = threads_per_member(config.train.threads, len(numbers))
    jobs = []
    for number in numbers:
        folder = member_dir(run_dir, number)
        stopped = checkpoint.ready_to_train(folder)
        folder.mkdir(exist_ok=True)
        jobs.append((member_config(config, number, member_dir(run_dir, 1), threads=threads), folder, stopped))
    log(f"ensemble members {', '.join(str(number) for number in numbers)} of {config.train.ensemble} at once, "
        f"{threads} CPU thread(s) each (seeds {', '.join(str(job[0].train.seed) for job in jobs)}); progress in "
        f"{run_dir}/member-K/{LOG_FILE}" + (" (resuming)" if any(job[2] for job in jobs) else ""))
    train_at_once(jobs, data, list_finished)


def _member_score(folder: Path) -> MemberScore:
    meta = checkpoint.read_meta(folder)
    return MemberScore(folder.name, meta.get("best_metrics", {}), float(meta.get("elapsed_s", 0.0)))


def validate_ensemble(config: ExperimentConfig, run_dir: Path, data: Any) -> dict[str, float]:
    """The ensemble's validation score: accuracy and macro-F1 (classifiers), loss and perplexity
    per token (language models), or greedy BLEU and chrF (translation), as each member was validated."""
    if config.task == "lm":
        from lstmnlp.language_modeling import read_corpus, validation_metrics
        from lstmnlp.lm_data import encode_text

        loaded = load_language_model_ensemble([run_dir])
        valid_ids = encode_text(loaded.tokenizer, read_corpus(config.data)[1], backward=config.model.backward)
        return validation_metrics(loaded.model, valid_ids, streams=config.train.eval_streams)
    if config.task == "classify":
        from lstmnlp.classification import evaluate_run

        valid = data[1]
        scores = evaluate_run(load_runs([run_dir], expected_task="classify"), valid.texts, valid.labels)
        return {"valid_accuracy": scores.accuracy, "valid_macro_f1": scores.macro_f1}
    assert config.task in SEQ2SEQ_TASKS
    from lstmnlp.metrics import bleu_and_chrf
    from lstmnlp.translation import read_training_pairs, translate_lines

    _, _, sources, references, _ = read_training_pairs(config)
    limit = config.train.eval_bleu_batches * config.train.batch_size or len(sources)  # as members validate
    sources, references = sources[:limit], references[:limit]
    loaded = load_translation_ensemble([run_dir], expected_task=SEQ2SEQ_TASKS)
    hypotheses = [found[0][0] for found in translate_lines(loaded.model, loaded.tokenizer, loaded.target_tokenizer,
                                                            sources, batch_size=config.train.batch_size,
                                                            fast_greedy=True)]
    scores = bleu_and_chrf(hypotheses, references, warn_tokenized=False)
    return {"valid_bleu": scores.bleu, "valid_chrf": scores.chrf}
