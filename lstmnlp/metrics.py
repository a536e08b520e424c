"""Corpus metrics through sacrebleu: BLEU (13a tokenization, cased) and chrF on detokenized text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lstmnlp.errors import UserError


@dataclass(frozen=True)
class BleuResult:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str

    def as_dict(self) -> dict:
        return {"bleu": self.bleu, "chrf": self.chrf, "bleu_signature": self.bleu_signature,
                "chrf_signature": self.chrf_signature}


def bleu_and_chrf(hypotheses: Sequence[str], references: Sequence[str], *,
                  warn_tokenized: bool = True) -> BleuResult:
    """sacrebleu corpus BLEU and chrF of plain-text hypotheses against one reference each;
    `warn_tokenized=False` silences sacrebleu's warning about text that looks tokenized (the same
    score; validation would repeat it at every evaluation of a tokenized corpus)."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise UserError(f"{len(hypotheses):,} hypotheses but {len(references):,} references: "
                        "the files must have one line per sentence")
    bleu, chrf = BLEU(force=not warn_tokenized), CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    return BleuResult(bleu_score.score, chrf_score.score, str(bleu.get_signature()), str(chrf.get_signature()))


@dataclass(frozen=True)
class ClassificationResult:
    accuracy: float  # percent
    macro_f1: float  # percent, the unweighted mean of per-class F1
    confusion: list[list[int]]  # confusion[gold][predicted]
    labels: list[str]

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "labels": self.labels,
                "confusion": self.confusion, "examples": sum(map(sum, self.confusion))}


def classification_scores(gold: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> ClassificationResult:
    """Accuracy, macro-F1 and the confusion matrix of class indices into `labels`."""
    if len(gold) != len(predicted):
        raise UserError(f"{len(predicted):,} predictions but {len(gold):,} labels")
    size = len(labels)
    confusion = [[0] * size for _ in range(size)]
    for truth, guess in zip(gold, predicted):
        confusion[truth][guess] += 1
    correct = sum(confusion[i][i] for i in range(size))
    f1s = []
    for i in range(size):
        predicted_i = sum(confusion[g][i] for g in range(size))
        gold_i = sum(confusion[i])
        if predicted_i + gold_i:
            f1s.append(2 * confusion[i][i] / (predicted_i + gold_i))
    accuracy = 100.0 * correct / max(len(gold), 1)
    macro_f1 = 100.0 * sum(f1s) / max(len(f1s), 1)
    return ClassificationResult(accuracy, macro_f1, confusion, list(labels))
