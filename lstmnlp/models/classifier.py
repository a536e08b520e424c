"""Text classifier: the shared StackedLSTMEncoder (usually bidirectional) -> pooling -> dropout
-> MLP -> class logits.

Shapes: B batch, T time, H hidden, D directions, C classes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lstmnlp.config import ModelConfig
from lstmnlp.models import build_encoder
from lstmnlp.models.adversarial import adversarial_offset, probe_like
from lstmnlp.models.outputs import LossOutput, row_cross_entropy
from lstmnlp.modules.dropout import Dropout
from lstmnlp.modules.pooling import SequencePooling


class ClassifierBatch(NamedTuple):
    ids: torch.Tensor  # (B, T) token ids, padded at the end
    lengths: torch.Tensor  # (B,) real lengths
    labels: torch.Tensor  # (B,) class indices


class TextClassifier(nn.Module):
    """Sequence -> one of `num_classes` labels. `hidden_classes` more outputs (after them) are
    trained but never predicted: `forward` gives the labels' logits alone."""

    def __init__(self, config: ModelConfig, *, vocab_size: int, num_classes: int, pad_id: int = 0,
                 hidden_classes: int = 0) -> None:
        super().__init__()
        self.num_labels = num_classes
        self.label_smoothing = config.label_smoothing
        self.adversarial = config.adversarial
        num_classes += hidden_classes
        self.encoder = build_encoder(config, vocab_size=vocab_size, pad_id=pad_id, bidirectional=config.bidirectional)
        features = config.hidden_size * self.encoder.num_directions
        self.pooling = SequencePooling(config.pooling, features, self.encoder.num_directions)
        features = self.pooling.out_features
        self.dropout = Dropout(config.dropout)
        if config.classifier_hidden:
            self.head = nn.Sequential(nn.Linear(features, config.classifier_hidden), nn.ReLU(),
                                      Dropout(config.dropout), nn.Linear(config.classifier_hidden, num_classes))
        else:
            self.head = nn.Linear(features, num_classes)
        # Per-class loss weights (1 = plain cross-entropy); set from the training labels.
        self.register_buffer("class_weights", torch.ones(num_classes))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, C) logits of the labels, and (B, T) attention weights when the pooling is `attention`."""
        logits, weights = self.all_logits(ids, lengths)
        return logits[:, :self.num_labels], weights

    def all_logits(self, ids: torch.Tensor, lengths: torch.Tensor,
                   offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`forward` with the hidden classes' logits too: (B, C + hidden); `offset` (B, T, E) is
        added to the embedded tokens."""
        encoded = self.encoder(ids, lengths, time_aligned=not self.pooling.order_free, offset=offset)
        lengths = lengths.to(ids.device, non_blocking=True)
        mask = torch.arange(ids.size(1), device=ids.device)[None, :] < lengths[:, None]  # (B, T)
        pooled, weights = self.pooling(encoded, mask)  # (B, D*H), or (B, 2*D*H) for max_mean
        return self.head(self.dropout(pooled)), weights

    def loss(self, batch: ClassifierBatch, carry=None) -> LossOutput:
        """Mean (class-weighted, label-smoothed) cross-entropy over the batch's examples, hidden
        classes included; the plain cross-entropy summed for the logs. With `model.adversarial`, in
        training, plus the same loss with the embeddings moved against the model (adversarial.py)."""
        if not (self.training and self.adversarial > 0):
            loss, nll = self._weighted_loss(batch)
        else:
            probe = probe_like(self.encoder.embedding, batch.ids)
            loss, nll = self._weighted_loss(batch, probe)
            real = torch.arange(batch.ids.size(1), device=batch.ids.device)[None, :] < batch.lengths.to(
                batch.ids.device)[:, None]
            offset = adversarial_offset(loss, probe, self.encoder.embedding(batch.ids), real, self.adversarial)
            loss = loss + self._weighted_loss(batch, offset)[0]
        return LossOutput(loss, nll.detach().sum(), batch.labels.numel(), tokens=batch.lengths.sum())

    def _weighted_loss(self, batch: ClassifierBatch,
                       offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(class-weighted mean of the smoothed losses, (B,) plain cross-entropies)."""
        logits, _ = self.all_logits(batch.ids, batch.lengths, offset)
        losses, nll = row_cross_entropy(logits, batch.labels, self.label_smoothing)  # (B,) each
        weights = self.class_weights[batch.labels]
        return (losses * weights).sum() / weights.sum(), nll
