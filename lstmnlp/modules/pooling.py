"""Pooling a padded sequence of encoder outputs into one vector per row, ignoring padding.

Shapes: B batch, T time, F features (D*H of the encoder), L*D layers x directions.
"""

from __future__ import annotations

import torch
from torch import nn

from lstmnlp.modules.encoder import EncoderOutput


class SequencePooling(nn.Module):
    """`max`, `mean`, `max_mean` (both, side by side: ULMFiT's concat pooling without the last
    state), `last` (final states of the top layer, both directions), or learned `attention`
    (additive self-attention over time, as in Yang et al. 2016's word attention)."""

    def __init__(self, kind: str, features: int, num_directions: int) -> None:
        super().__init__()
        self.kind = kind
        self.num_directions = num_directions
        # max and mean do not look at order, so the encoder may leave its backward half reversed.
        self.order_free = kind in ("max", "mean", "max_mean")
        self.out_features = 2 * features if kind == "max_mean" else features
        if kind == "attention":
            self.attention_hidden = nn.Linear(features, features)
            self.attention_score = nn.Linear(features, 1, bias=False)

    def forward(self, encoded: EncoderOutput, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, F) pooled vectors ((B, 2F) for `max_mean`), and (B, T) attention weights for
        `attention` pooling (else None).

        Args:
            encoded: encoder outputs (B, T, F), zero at padding, and final states.
            mask: (B, T) True at real tokens; every row has at least one.
        """
        outputs = encoded.outputs
        if self.kind == "max":
            return max_over_time(outputs, mask), None
        if self.kind == "mean":
            return mean_over_time(outputs, mask), None
        if self.kind == "max_mean":
            return torch.cat([max_over_time(outputs, mask), mean_over_time(outputs, mask)], dim=1), None
        if self.kind == "last":
            top = encoded.final.hidden[-self.num_directions:]  # (D, B, H): forward at the last token,
            return top.transpose(0, 1).flatten(1), None  # backward at the first; (B, D*H)
        scores = self.attention_score(torch.tanh(self.attention_hidden(outputs))).squeeze(-1)  # (B, T)
        weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=1)  # (B, T)
        return torch.bmm(weights.to(outputs.dtype)[:, None, :], outputs).squeeze(1), weights


def max_over_time(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, F) largest value of each feature over the real tokens of (B, T, F) `outputs`."""
    return outputs.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)


def mean_over_time(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, F) mean of each feature over the real tokens of (B, T, F) `outputs`."""
    summed = (outputs * mask[..., None]).sum(dim=1)
    return summed / mask.sum(dim=1, keepdim=True).to(outputs.dtype)
