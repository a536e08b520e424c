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


def bleu_and_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> BleuResult:
    """sacrebleu corpus BLEU and chrF of plain-text hypotheses against one reference each."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise UserError(f"{len(hypotheses):,} hypotheses but {len(references):,} references: "
                        "the files must have one line per sentence")
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    return BleuResult(bleu_score.score, chrf_score.score, str(bleu.get_signature()), str(chrf.get_signature()))
