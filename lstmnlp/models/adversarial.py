"""Adversarial training on embeddings (Miyato, Dai & Goodfellow 2017, arXiv:1605.07725): the
loss is also taken with each sentence's embedded tokens moved a small step in the direction that
raises it most, the gradient of the clean loss with respect to them.

Miyato et al. normalize their embeddings so that one step size fits every run; lstmnlp's are not
normalized, so the step is a share of each sentence's own embedding norm instead.
"""

from __future__ import annotations

import torch


def probe_like(embedding: torch.nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """(B, T, E) zeros to add to the embedded tokens, whose gradient the clean loss will give."""
    return embedding.weight.new_zeros(*ids.shape, embedding.embedding_dim, requires_grad=True)


def adversarial_offset(loss: torch.Tensor, probe: torch.Tensor, embedded: torch.Tensor,
                       real: torch.Tensor, share: float) -> torch.Tensor:
    """(B, T, E) offset along d loss / d `probe`, its L2 norm per sentence `share` times that of
    the sentence's `embedded` tokens; zero where `real` (B, T) is False. The offset is a constant
    for the later backward (no second-order terms), and the clean graph is kept for it."""
    (gradient,) = torch.autograd.grad(loss, probe, retain_graph=True)
    with torch.no_grad():
        gradient = gradient.float() * real[..., None]
        embedded = embedded.float() * real[..., None]
        direction = gradient / gradient.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
        size = share * embedded.flatten(1).norm(dim=1)
        return (direction * size[:, None, None]).to(probe.dtype)
