"""Length-bucketed batching shared by the tasks that read one sequence (or pair) per example."""

from __future__ import annotations

import random
from typing import Sequence

POOL_BATCHES = 50  # batches sorted together: less padding, still well shuffled


def bucket_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None = None) -> list[list[int]]:
    """Example indices grouped into batches of similar length.

    With `rng`, examples are shuffled, then sorted by length within pools of `POOL_BATCHES`
    batches, and the batches shuffled; without it the order is deterministic.
    """
    order = list(range(len(lengths)))
    if rng is not None:
        rng.shuffle(order)
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda index: lengths[index])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if rng is not None:
        rng.shuffle(batches)
    return batches
