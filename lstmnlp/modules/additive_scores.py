"""Additive attention scores computed in cache-sized slices, with a hand-written backward.

    scores[b, t, s] = sum_a v[a] * sigmoid(q[b, t, a] + k[b, s, a])

The (B, T, S, A) tensor inside is the largest of a translation step (64 x 26 x 32 x 512 floats =
109 MB for one batch): through autograd it is written, read and saved several times in main
memory (add, sigmoid, the energy product; in backward an outer product, sigmoid's backward and
two reductions). Here it is built a few batch rows at a time so that each slice stays in cache,
nothing of that size is saved (backward rebuilds the slice), and the backward products are
matrix products over the slice: with s = sigmoid(.) and d = s (1 - s),

    dL/dv[a]    = sum_{b,t,s} g[b,t,s] s[b,t,s,a]
    dL/dq[b,t,a] = v[a] sum_s g[b,t,s] d[b,t,s,a]
    dL/dk[b,s,a] = v[a] sum_t g[b,t,s] d[b,t,s,a]

On the CPU (2 cores) forward + backward at that shape: 228 ms through autograd, 53 ms here.
"""

from __future__ import annotations

import torch

SLICE_ELEMENTS = 1 << 20  # about 4 MB of fp32 per slice: within a last-level cache


def additive_scores(query: torch.Tensor, keys: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """(B, T, A) projected queries, (B, S, A) projected keys, (A,) energy vector -> (B, T, S).

    All three in one dtype (the caller casts)."""
    return _AdditiveScores.apply(query, keys, energy)


def _rows_per_slice(query: torch.Tensor, keys: torch.Tensor) -> int:
    if query.device.type != "cpu":  # no cache to fit on a GPU: one slice
        return max(query.size(0), 1)
    per_row = query.size(1) * keys.size(1) * query.size(2)
    return max(1, SLICE_ELEMENTS // max(per_row, 1))


def _activations(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """sigmoid(q + k) for a slice of rows: (n, T, S, A)."""
    return torch.add(query[:, :, None, :], keys[:, None, :, :]).sigmoid_()


class _AdditiveScores(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query: torch.Tensor, keys: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = query.shape
        rows = _rows_per_slice(query, keys)
        scores = query.new_empty(batch, steps, keys.size(1))
        with torch.autocast(query.device.type, enabled=False):  # dtypes are the caller's
            for start in range(0, batch, rows):
                end = min(start + rows, batch)
                torch.matmul(_activations(query[start:end], keys[start:end]), energy, out=scores[start:end])
        ctx.save_for_backward(query, keys, energy)
        return scores

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        query, keys, energy = ctx.saved_tensors
        batch, steps, size = query.shape
        sources = keys.size(1)
        rows = _rows_per_slice(query, keys)
        grad = grad.contiguous().to(query.dtype)
        grad_query, grad_keys = torch.empty_like(query), torch.empty_like(keys)
        total = torch.promote_types(energy.dtype, torch.float32)  # bf16 sums kept in fp32
        grad_energy = torch.zeros(size, dtype=total, device=energy.device)
        for start in range(0, batch, rows):
            end = min(start + rows, batch)
            count, slice_grad = end - start, grad[start:end]
            active = _activations(query[start:end], keys[start:end])  # (n, T, S, A)
            grad_energy += (active.reshape(-1, size).t() @ slice_grad.reshape(-1)).to(total)
            active.addcmul_(active, active, value=-1.0)  # s (1 - s), in place
            torch.matmul(slice_grad.reshape(count * steps, 1, sources), active.view(count * steps, sources, size),
                         out=grad_query[start:end].view(count * steps, 1, size))
            grad_keys[start:end] = torch.einsum("bts,btsa->bsa", slice_grad, active)
        return grad_query.mul_(energy), grad_keys.mul_(energy), grad_energy.to(energy.dtype)
