"""Training batches onto the device one batch ahead.

On CUDA each batch's tensors are copied into pinned (page-locked) host memory and sent with
`non_blocking=True`, and the next batch is sent before the current one is handed out, so the copy
overlaps the GPU's work on the current step. On the CPU the batches pass through unchanged.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

import torch

Batch = TypeVar("Batch")


def to_device(device: torch.device) -> Callable:
    """A function moving a batch (a NamedTuple of tensors) onto `device`."""
    if device.type != "cuda":
        return lambda batch: type(batch)(*(tensor.to(device) for tensor in batch))
    return lambda batch: type(batch)(*(tensor.pin_memory().to(device, non_blocking=True) for tensor in batch))


def one_ahead(batches: Iterable[Batch], move: Callable[[Batch], Batch]) -> Iterator[Batch]:
    """`move(batch)` for every batch, in order, each moved before the previous one is handed out."""
    pending = None
    for batch in batches:
        moved = move(batch)
        if pending is not None:
            yield pending
        pending = moved
    if pending is not None:
        yield pending
