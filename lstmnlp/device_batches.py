"""Training batches onto the device one batch ahead.

On CUDA each batch's tensors are copied into pinned (page-locked) host memory and sent with
`non_blocking=True`, and the next batch is sent before the current one is handed out, so the copy
overlaps the GPU's work on the current step. On the CPU the batches pass through unchanged.
The lengths stay on the host (pinned): the encoder asks every step whether each row of the batch
is full, which read from the GPU would make the host wait for the step before it.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

import torch

Batch = TypeVar("Batch")


HOST_FIELDS = frozenset({"lengths", "source_lengths"})  # read on the host; models copy them over themselves


def to_device(device: torch.device) -> Callable:
    """A function moving a batch (a NamedTuple of tensors) onto `device`, its HOST_FIELDS excepted."""
    pin = device.type == "cuda"

    def move(batch):
        tensors = (tensor.pin_memory() if pin else tensor for tensor in batch)
        return type(batch)(*(tensor if name in HOST_FIELDS else tensor.to(device, non_blocking=pin)
                             for name, tensor in zip(batch._fields, tensors)))
    return move


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
