"""Attention over encoder states: Bahdanau (additive), Luong general and dot.

Shapes: B batch, T decoder steps, S source, Q query size, K key (encoder output) size, A attention.
"""

from __future__ import annotations

import torch
from torch import nn

from lstmnlp.modules.additive_scores import additive_scores

ATTENTION_KINDS = ("bahdanau", "luong", "dot")


class Attention(nn.Module):
    """score(q, k): additive v^T tanh(W_q q + W_k k) (Bahdanau et al., arXiv:1409.0473),
    general q^T W k or dot q^T k (Luong et al., arXiv:1508.04025).

    The additive score is computed as 2 v^T sigmoid(2 (W_q q + W_k k)): since tanh(x) =
    2 sigmoid(2x) - 1, that is v^T tanh(...) + sum(v), the same shift for every key of a query,
    which the softmax ignores. PyTorch's CPU sigmoid is 3.5x faster than its tanh, and this is
    the one (B, T, S, A) elementwise pass of the model; `additive_scores` computes it in
    cache-sized slices.
    """

    def __init__(self, kind: str, *, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention {kind!r}")
        if kind == "dot" and query_size != key_size:
            raise ValueError("dot attention needs query and key of the same size")
        self.kind = kind
        if kind == "bahdanau":
            self.key_layer = nn.Linear(key_size, attention_size, bias=False)
            self.query_layer = nn.Linear(query_size, attention_size, bias=False)
            self.energy = nn.Linear(attention_size, 1, bias=False)
        elif kind == "luong":
            self.key_layer = nn.Linear(key_size, query_size, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """Precompute the key side once per source batch: (B, S, K) -> (B, S, A or Q or K);
        additive: 2 W_k k (see the class docstring)."""
        if self.kind == "bahdanau":
            return self.key_layer(keys) * 2.0
        return keys if self.kind == "dot" else self.key_layer(keys)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, projected: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts and weights for (B, T, Q) queries.

        Args:
            keys: (B, S, K) encoder outputs; projected: `project_keys(keys)`.
            mask: (B, S) True at real source tokens.

        Returns:
            contexts (B, T, K) and attention weights (B, T, S), zero at padding.
        """
        if self.kind == "bahdanau":
            queries = self.query_layer(query) * 2.0  # (B, T, A)
            energy = self.energy.weight[0].to(queries.dtype) * 2.0
            # (B, T, S): v^T tanh(...) + sum(v), without a (B, T, S, A) tensor in main memory
            scores = additive_scores(queries, projected.to(queries.dtype), energy)
        else:
            scores = torch.bmm(query, projected.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(keys.dtype)  # (B, T, S)
        return torch.bmm(weights, keys), weights  # (B, T, K)
