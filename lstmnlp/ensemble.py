"""Ensembles: several trained runs of one task decide together, their probabilities averaged.

Independently trained models make different mistakes, so the average of their probabilities
is usually right more often than any one of them (fairseq's and OpenNMT-py's ensemble
decoding, and its language-model ensembles). A classifier ensemble averages class
probabilities: each member reads the raw text with its own tokenizer, and the members must have
the same label names. Translation and language-model ensembles average each member's
next-token probabilities at every step, so the members must share their vocabularies (train them
with one tokenizer: `train.ensemble`, or `--set tokenizer.path=FIRST_RUN/tokenizer.model`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from lstmnlp import checkpoint
from lstmnlp.errors import UserError
from lstmnlp.models.outputs import LossOutput


def average_log_probs(log_probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """log of the mean of the members' probabilities, from their (B, V) log-probabilities."""
    if len(log_probs) == 1:
        return log_probs[0]
    return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))


@dataclass(frozen=True)
class EnsembleState:
    """The members' decoder states side by side; row operations apply to each."""

    members: tuple[Any, ...]

    def select(self, index: torch.Tensor) -> "EnsembleState":
        return type(self)(tuple(state.select(index) for state in self.members))

    @classmethod
    def concat(cls, states: Sequence["EnsembleState"]) -> "EnsembleState":
        """The states' batch rows one after another, member by member."""
        members = zip(*(state.members for state in states))
        return cls(tuple(type(parts[0]).concat(parts) for parts in members))


@dataclass(frozen=True)
class Seq2SeqEnsembleState(EnsembleState):
    """Encoder-decoder states, whose members also expand and reorder beams their own way."""

    def expand_beams(self, beam_size: int) -> "Seq2SeqEnsembleState":
        return Seq2SeqEnsembleState(tuple(state.expand_beams(beam_size) for state in self.members))

    def reorder_beams(self, index: torch.Tensor) -> "Seq2SeqEnsembleState":
        return Seq2SeqEnsembleState(tuple(state.reorder_beams(index) for state in self.members))


class Seq2SeqEnsemble(nn.Module):
    """Encoder-decoder models with one vocabulary, decoded as one: `encode` and `step` as a
    single `Seq2SeqModel` offers them, so translation and search need no change."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def encode(self, source_ids: torch.Tensor, source_lengths: torch.Tensor) -> Seq2SeqEnsembleState:
        return Seq2SeqEnsembleState(tuple(member.encode(source_ids, source_lengths) for member in self.members))

    def step(self, prev_ids: torch.Tensor, state: Seq2SeqEnsembleState) -> tuple[torch.Tensor, Seq2SeqEnsembleState]:
        return averaged_step(self.members, prev_ids, state)


class LanguageModelEnsemble(nn.Module):
    """Language models with one vocabulary read as one: `initial_state`, `forward`, `loss` and
    `step` as a single `LanguageModel` offers them, except that `forward` returns the averaged
    log-probabilities (log-probabilities are their own logits), so sampling, beam search and
    scoring need no change."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def initial_state(self, batch_size: int) -> EnsembleState:
        return EnsembleState(tuple(member.initial_state(batch_size) for member in self.members))

    def forward(self, ids: torch.Tensor, state: EnsembleState | None = None) -> tuple[torch.Tensor, EnsembleState]:
        """(B, T, V) log of the members' mean next-token probabilities, and the state after."""
        states = state.members if state is not None else (None,) * len(self.members)
        outputs = [member(ids, member_state) for member, member_state in zip(self.members, states)]
        log_probs = average_log_probs([torch.log_softmax(logits.float(), dim=-1) for logits, _ in outputs])
        return log_probs, EnsembleState(tuple(final for _, final in outputs))

    def loss(self, batch, carry: EnsembleState | None = None) -> LossOutput:
        """Mean negative log-likelihood of the targets under the averaged probabilities."""
        log_probs, final = self(batch.inputs, carry)
        total = nn.functional.nll_loss(log_probs.flatten(0, 1), batch.targets.flatten(), reduction="sum")
        count = batch.targets.numel()
        return LossOutput(total / count, float(total.detach()), count, final)

    def step(self, prev_ids: torch.Tensor, state: EnsembleState) -> tuple[torch.Tensor, EnsembleState]:
        return averaged_step(self.members, prev_ids, state)


def averaged_step(members: Sequence[nn.Module], prev_ids: torch.Tensor, state: EnsembleState):
    """One search step of every member from its own state: (averaged (B, V) log-probabilities,
    the members' new states in a state of `state`'s kind)."""
    outputs = [member.step(prev_ids, member_state) for member, member_state in zip(members, state.members)]
    return average_log_probs([log_probs for log_probs, _ in outputs]), type(state)(tuple(s for _, s in outputs))


def member_dirs(run_dir: Path) -> list[Path]:
    """The runs a directory stands for: its members when it holds an ensemble (`ensemble.json`,
    written by `train.ensemble`), else the run itself."""
    listing = Path(run_dir) / checkpoint.ENSEMBLE
    if not listing.is_file():
        return [Path(run_dir)]
    try:
        names = json.loads(listing.read_text(encoding="utf-8"))["members"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise UserError(f"{listing}: damaged ensemble listing") from None
    return [Path(run_dir) / name for name in names]


def run_task(run_dir: Path) -> str:
    """The task of a run, or of an ensemble run's members (`meta.json`)."""
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    return str(checkpoint.read_meta(member_dirs(run_dir)[0]).get("task"))


def load_runs(run_dirs: Sequence[Path], *, expected_task: str | tuple[str, ...]) -> list[checkpoint.LoadedRun]:
    """Every member run of `run_dirs` (an ensemble directory counts as its members), loaded."""
    runs = [checkpoint.load_run(member, expected_task=expected_task)
            for run_dir in run_dirs for member in member_dirs(run_dir)]
    tasks = {run.config.task for run in runs}
    if len(tasks) > 1:
        raise UserError(f"an ensemble needs runs of one task, not {' and '.join(sorted(tasks))}")
    return runs


def load_translation_ensemble(run_dirs: Sequence[Path], *, expected_task: tuple[str, ...]) -> checkpoint.LoadedRun:
    """The runs as one translation model: the first run's settings and tokenizers, the members'
    averaged steps. Refused unless every member has the first one's vocabularies."""
    return _load_token_ensemble(run_dirs, expected_task, Seq2SeqEnsemble)


def load_language_model_ensemble(run_dirs: Sequence[Path]) -> checkpoint.LoadedRun:
    """The runs as one language model (the first run's settings and tokenizer, the members'
    averaged probabilities); refused unless every member has the first one's vocabulary."""
    return _load_token_ensemble(run_dirs, "lm", LanguageModelEnsemble)


def _load_token_ensemble(run_dirs: Sequence[Path], expected_task, ensemble_class) -> checkpoint.LoadedRun:
    runs = load_runs(run_dirs, expected_task=expected_task)
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    for run in runs[1:]:
        if run.config.model.backward != first.config.model.backward:
            raise UserError(f"{run.run_dir} and {first.run_dir} read text in opposite directions "
                            "(model.backward); an ensemble's members must read it one way")
        sides = [("", first.tokenizer, run.tokenizer)] if first.config.task == "lm" else [
            ("source ", first.tokenizer, run.tokenizer), ("target ", first.target_tokenizer, run.target_tokenizer)]
        for side, mine, theirs in sides:
            if _pieces(mine) != _pieces(theirs):
                raise UserError(f"{run.run_dir}: its {side}vocabulary differs from {first.run_dir}'s; an "
                                "ensemble averages next-token probabilities, so its members need one tokenizer "
                                f"(train with --set tokenizer.path={first.run_dir / checkpoint.TOKENIZER})")
    return checkpoint.LoadedRun(first.run_dir, first.config, first.meta, first.tokenizer,
                                ensemble_class([run.model for run in runs]).eval(), first.target_tokenizer)


def _pieces(tokenizer) -> list[str]:
    return [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]


def classifier_labels(runs: Sequence[checkpoint.LoadedRun]) -> list[str]:
    """The label names every member shares (in the first member's order); refused otherwise."""
    labels = list(runs[0].meta["labels"])
    for run in runs[1:]:
        if sorted(run.meta["labels"]) != sorted(labels):
            raise UserError(f"{run.run_dir}: its labels ({', '.join(run.meta['labels'])}) differ from "
                            f"{runs[0].run_dir}'s ({', '.join(labels)}); an ensemble needs the same labels")
    return labels


def predict_ensemble(runs: Sequence[checkpoint.LoadedRun], texts: Sequence[str], *,
                     batch_size: int = 64, use_nbsvm: bool = True) -> torch.Tensor:
    """(N, C) class probabilities averaged over the member classifiers, columns in the order of
    `classifier_labels(runs)`; each member reads the texts with its own tokenizer and casing, its
    NBSVM (`model.nbsvm_ngrams`) mixed in where it has one, unless `use_nbsvm` is False."""
    from lstmnlp.classification import predict
    from lstmnlp.nbsvm import load_nbsvm

    labels = classifier_labels(runs)
    total = torch.zeros(len(texts), len(labels))
    for run in runs:
        read = [text.lower() for text in texts] if run.config.data.lowercase else texts  # as the run trained
        probabilities = predict(run.model, run.tokenizer, read, max_length=run.config.data.max_length,
                                batch_size=batch_size)
        nbsvm = load_nbsvm(run.run_dir) if use_nbsvm else None
        if use_nbsvm and nbsvm is None and run.config.model.nbsvm_ngrams:
            raise UserError(f"{run.run_dir}: model.nbsvm_ngrams is set but the run has no NBSVM (its training "
                            f"stopped before fitting it): finish it with `lstmnlp train ... --out {run.run_dir} "
                            "--resume`, or pass --no-nbsvm for the BiLSTM alone")
        if nbsvm is not None:
            probabilities = nbsvm.mix_into(probabilities, read)
        columns = [run.meta["labels"].index(name) for name in labels]
        total += probabilities[:, columns]
    return total / len(runs)
