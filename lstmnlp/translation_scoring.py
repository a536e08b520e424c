"""Forced decoding: how likely a translation model finds given references (`lstmnlp score` of a
translation run; OpenNMT-py's `translate -tgt` gold scores, fairseq's `--score-reference`).

Each reference is scored piece by piece through the model's own decoding step, so a score is the
one beam search would give the same pieces (its log-probability with <eos>), for one model, an
ensemble or an int8 model alike.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from lstmnlp.errors import UserError
from lstmnlp.metrics import ScoreResult, line_score
from lstmnlp.tokenizer import PAD_ID, Tokenizer
from lstmnlp.translation import Pair, collate, encode_sources


@torch.inference_mode()
def pair_log_likelihoods(model, pairs: Sequence[Pair], *, batch_size: int = 64) -> list[float]:
    """log p(target + <eos> | source) of each (source ids, target ids) pair, in input order;
    pairs are batched by source length."""
    device = next(model.parameters()).device
    model.eval()
    results = [0.0] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = collate([pairs[i] for i in rows])
        state = model.encode(batch.source_ids.to(device), batch.source_lengths.to(device))
        inputs, outputs = batch.target_inputs.to(device), batch.target_outputs.to(device)  # (B, T)
        total = torch.zeros(len(rows), device=device)
        for position in range(inputs.size(1)):
            log_probs, state = model.step(inputs[:, position], state)  # (B, V)
            chosen = log_probs.gather(1, outputs[:, position, None]).squeeze(1).float()
            total += chosen.masked_fill(outputs[:, position] == PAD_ID, 0.0)
        for row, value in zip(rows, total.tolist()):
            results[row] = value
    return results


def score_translations(model, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, sources: Sequence[str],
                       references: Sequence[str], *, batch_size: int = 64, max_source_length: int = 0,
                       warn: Callable[[str], None] | None = None) -> list[dict]:
    """Each reference's `score --per-line` object given its source, in input order: its pieces
    and <eos> are the tokens. `max_source_length` > 0 cuts longer sources, told through `warn`."""
    if len(sources) != len(references):
        raise UserError(f"the source has {len(sources):,} lines but the references {len(references):,}: "
                        "they must be aligned line by line")
    source_ids = encode_sources(source_tokenizer, sources, max_source_length, warn)
    pairs = list(zip(source_ids, target_tokenizer.encode_batch(list(references))))
    log_likelihoods = pair_log_likelihoods(model, pairs, batch_size=batch_size)
    return [line_score(-value, len(target) + 1) for value, (_, target) in zip(log_likelihoods, pairs)]


def corpus_score(line_scores: Sequence[dict], references: Sequence[str], *, character_level: bool) -> ScoreResult:
    """The references' score as one text: every piece and <eos> of every line, and per word
    (a line's words and its end)."""
    if not line_scores:
        raise UserError("nothing to score: the input has no lines")
    total = sum(score["nll"] for score in line_scores)
    count = sum(score["tokens"] for score in line_scores)
    words = sum(len(reference.split()) + 1 for reference in references)
    return ScoreResult.from_totals(total, count, words=words, character_level=character_level)
