"""Inverted dropout, faster on CPU than `nn.Dropout`.

On CPU, `nn.functional.dropout` draws its mask with `bernoulli_`, which takes 4.3 ms for a
64 x 25 x 300 tensor on our 2-core machine; comparing uniform draws with `p` gives the same
distribution (each element kept with probability 1 - p, scaled by 1 / (1 - p)) in 1.7 ms, and
forward + backward in 2.7 ms against 5.1 ms. Elsewhere (CUDA: one fused kernel) it is
`nn.functional.dropout` itself.
"""

from __future__ import annotations

import torch
from torch import nn


def dropout(values: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`nn.functional.dropout(values, p, training)`, with a cheaper mask on CPU."""
    if not training or p <= 0.0:
        return values
    if values.device.type != "cpu" or p >= 1.0:
        return nn.functional.dropout(values, p, training=True)
    keep = torch.rand(values.shape, device=values.device) >= p  # True with probability 1 - p
    return values * (keep.to(values.dtype) * (1.0 / (1.0 - p)))  # keeps values' dtype


class Dropout(nn.Module):
    """Drop-in for `nn.Dropout` that calls `dropout` above."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return dropout(values, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class WordDropout(nn.Module):
    """Drops whole tokens: each position's (B, T, E) embedding vector is zeroed with probability
    `p` and the rest scaled by 1 / (1 - p), so the model cannot lean on any single word (word
    dropout, Iyyer et al. 2015)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"word dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0.0:
            return embedded
        return embedded * dropout(embedded.new_ones(*embedded.shape[:-1], 1), self.p, True)

    def extra_repr(self) -> str:
        return f"p={self.p}"
