"""The small contract between models and the Trainer."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


class LossOutput(NamedTuple):
    """What every model's `loss(batch, carry)` returns to the Trainer."""

    loss: torch.Tensor  # mean loss to back-propagate
    total: float  # summed loss over the counted tokens/examples
    count: int  # tokens (or examples) counted
    carry: Any = None  # recurrent state carried to the next batch (truncated BPTT), or None
    tokens: int | None = None  # input tokens processed, for throughput; None = `count`
