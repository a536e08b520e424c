"""Length-bucketed batching shared by the tasks that read one sequence (or pair) per example."""

from __future__ import annotations

import random
from typing import Sequence, Union

POOL_BATCHES = 50  # batches sorted together: less padding, still well shuffled
Length = Union[int, tuple[int, ...]]  # a sequence's length, or a pair's (source, target) lengths


def bucket_batches(lengths: Sequence[Length], batch_size: int, rng: random.Random | None = None, *,
                   max_tokens: int = 0) -> list[list[int]]:
    """Example indices grouped into batches of similar length.

    With `rng`, examples are shuffled, then sorted by length (pairs: target, then source) within
    pools of `POOL_BATCHES` batches, and the batches shuffled; without it the order is deterministic. `max_tokens` > 0
    also bounds a batch's padded size (rows x longest row, source + target for pairs), so that
    a few very long examples cannot blow up memory; a single longer example gets a batch alone.
    """
    order = list(range(len(lengths)))
    if rng is not None:
        rng.shuffle(order)
    pool = batch_size * POOL_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda index: _sort_key(lengths[index]))
        batch: list[int] = []
        longest = 0
        for index in chunk:
            size = _size(lengths[index])
            grown = max(longest, size)
            if batch and (len(batch) == batch_size or (max_tokens and grown * (len(batch) + 1) > max_tokens)):
                batches.append(batch)
                batch, grown = [], size
            batch.append(index)
            longest = grown
        if batch:
            batches.append(batch)
    if rng is not None:
        rng.shuffle(batches)
    return batches


def _sort_key(length: Length) -> Length:
    """Pairs sort by target length first: the decoder and the output softmax, which cost most,
    then see almost no padding (Multi30k de-en: target padding 1.03x instead of 1.28x, source
    padding 1.27x instead of 1.03x; 4,622 vs 4,379 target tokens/s side by side)."""
    return tuple(reversed(length)) if isinstance(length, tuple) else length


def _size(length: Length) -> int:
    return sum(length) if isinstance(length, tuple) else length
