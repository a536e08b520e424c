"""The small contract between models and the Trainer."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


class LossOutput(NamedTuple):
    """What every model's `loss(batch, carry)` returns to the Trainer."""

    loss: torch.Tensor  # mean loss to back-propagate
    # The figures below may be 0-dim tensors on the model's device: reading one back (float(),
    # int()) waits for the GPU, so the Trainer adds them up there and reads them at log time.
    total: torch.Tensor | float  # summed loss over the counted tokens/examples (detached)
    count: torch.Tensor | int  # tokens (or examples) counted
    carry: Any = None  # recurrent state carried to the next batch (truncated BPTT), or None
    tokens: torch.Tensor | int | None = None  # input tokens processed, for throughput; None = `count`


def row_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                      smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-smoothed and plain cross-entropy of each row, from one log-softmax.

    The smoothed one equals `cross_entropy(..., label_smoothing=smoothing, reduction="none")` (the
    uniform share spread over all V classes), without a second softmax pass for the plain NLL.

    Args:
        logits: (N, V); targets: (N,).

    Returns:
        (N,) smoothed losses and (N,) plain NLL (the same tensor when `smoothing` is 0).
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    nll = -log_probs.gather(1, targets[:, None]).squeeze(1)  # (N,)
    if smoothing > 0:
        return (1.0 - smoothing) * nll - smoothing * log_probs.mean(dim=-1), nll
    return nll, nll


def smoothed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, pad_id: int,
                           smoothing: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`row_cross_entropy` summed over the tokens, padding ignored.

    Args:
        logits: (N, V); targets: (N,) with `pad_id` at padding.

    Returns:
        the summed smoothed loss (differentiable), the summed plain NLL (detached), the count of
        real targets (a 0-dim tensor: no wait for the GPU).
    """
    padding = targets == pad_id  # (N,)
    losses, nll = row_cross_entropy(logits, targets, smoothing)
    return losses.masked_fill(padding, 0.0).sum(), nll.detach().masked_fill(padding, 0.0).sum(), (~padding).sum()
