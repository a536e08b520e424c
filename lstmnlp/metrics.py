"""Corpus metrics through sacrebleu: BLEU (13a tokenization, cased) and chrF on detokenized text."""

from __future__ import annotations

import math
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


@dataclass
class ScoreResult:
    """How well a model predicts a text (`lstmnlp score`): per token, and per word so that models
    with different tokenizers compare (words: whitespace-separated, plus one per line end)."""

    tokens: int
    nll_per_token: float
    perplexity: float
    words: int
    perplexity_per_word: float
    bits_per_char: float | None

    @classmethod
    def from_totals(cls, total: float, count: int, *, words: int, character_level: bool) -> "ScoreResult":
        """From the summed negative log-likelihood (nats) of `count` tokens."""
        nll = total / count
        return cls(count, nll, math.exp(min(nll, 50.0)), words, math.exp(min(total / max(words, 1), 50.0)),
                   nll / math.log(2) if character_level else None)

    def as_dict(self) -> dict:
        result = {"tokens": self.tokens, "nll_per_token": self.nll_per_token, "perplexity": self.perplexity,
                  "words": self.words, "perplexity_per_word": self.perplexity_per_word}
        if self.bits_per_char is not None:
            result["bits_per_char"] = self.bits_per_char
        return result


def line_score(total: float, count: int) -> dict:
    """`score --per-line`'s object for one line: `count` tokens of summed negative log-likelihood
    `total` (nats)."""
    return {"tokens": count, "nll": total, "nll_per_token": total / count,
            "perplexity": math.exp(min(total / count, 50.0))}
