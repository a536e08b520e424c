"""Exponential moving average of the weights (Polyak averaging; OpenNMT-py's `average_decay`,
fairseq's `--ema-decay`): validation and the saved weights use the average, training goes on
with the raw weights."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class WeightAverage:
    """average <- decay * average + (1 - decay) * weights, after every optimizer step."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.parameters = list(model.parameters())
        self.average = [parameter.detach().clone() for parameter in self.parameters]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, [parameter.detach() for parameter in self.parameters], 1.0 - self.decay)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own weights again after it."""
        with torch.no_grad():
            raw = [parameter.detach().clone() for parameter in self.parameters]
            torch._foreach_copy_([parameter.detach() for parameter in self.parameters], self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([parameter.detach() for parameter in self.parameters], raw)

    def state(self) -> list[torch.Tensor]:
        return [tensor.clone() for tensor in self.average]

    def load(self, state: list[torch.Tensor]) -> None:
        if len(state) != len(self.average):
            raise ValueError("the weight average in the checkpoint does not match the model")
        for average, saved in zip(self.average, state):
            average.copy_(saved)
