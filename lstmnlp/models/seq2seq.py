"""Attention-based encoder-decoder: bidirectional StackedLSTMEncoder -> bridge -> AttentionDecoder.

Shapes: B batch, S source, T target, K encoder output (2 x encoder hidden), V target vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lstmnlp.config import ModelConfig
from lstmnlp.modules.decoder import AttentionDecoder, DecoderState
from lstmnlp.models import build_encoder
from lstmnlp.models.outputs import LossOutput, smoothed_cross_entropy


class Seq2SeqBatch(NamedTuple):
    source_ids: torch.Tensor  # (B, S) padded with pad_id
    source_lengths: torch.Tensor  # (B,)
    target_inputs: torch.Tensor  # (B, T) <bos> y_1 .. y_n, padded
    target_outputs: torch.Tensor  # (B, T) y_1 .. y_n <eos>, padded


class Seq2SeqModel(nn.Module):
    """Translation model; `loss` for the Trainer, `encode` + `step` for search."""

    def __init__(self, config: ModelConfig, *, source_vocab_size: int, target_vocab_size: int,
                 pad_id: int = 0) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.label_smoothing = config.label_smoothing
        self.encoder = build_encoder(config, vocab_size=source_vocab_size, pad_id=pad_id,
                                     bidirectional=config.bidirectional)
        decoder_hidden = config.decoder_hidden_size or self.encoder.output_size
        self.decoder = AttentionDecoder(
            vocab_size=target_vocab_size, embedding_dim=config.embedding_dim, hidden_size=decoder_hidden,
            num_layers=config.decoder_layers, encoder_size=self.encoder.output_size,
            attention=config.attention, input_feeding=config.input_feeding, dropout=config.dropout, pad_id=pad_id)
        # Tying needs the attentional vector in embedding space: project when sizes differ.
        tie = config.tie_weights
        self.projection = (nn.Linear(decoder_hidden, config.embedding_dim, bias=False)
                           if tie and decoder_hidden != config.embedding_dim else None)
        self.output = nn.Linear(config.embedding_dim if tie else decoder_hidden, target_vocab_size)
        if tie:
            self.output.weight = self.decoder.embedding.weight  # Press & Wolf, arXiv:1608.05859
        if config.share_embeddings:
            if source_vocab_size != target_vocab_size:
                raise ValueError("shared embeddings need one joint vocabulary")
            self.decoder.embedding.weight = self.encoder.embedding.weight

    def encode(self, source_ids: torch.Tensor, source_lengths: torch.Tensor) -> DecoderState:
        """Encoder pass and the decoder's start state."""
        encoded = self.encoder(source_ids, source_lengths)  # outputs (B, S, K)
        source_lengths = source_lengths.to(source_ids.device, non_blocking=True)
        mask = torch.arange(source_ids.size(1), device=source_ids.device)[None] < source_lengths[:, None]
        hidden = encoded.final.hidden  # (L*D, B, H)
        directions = self.encoder.num_directions
        summary = torch.cat([hidden[-directions + d] for d in range(directions)], dim=-1)  # top layer (B, K)
        return self.decoder.initial_state(encoded.outputs, summary, mask)

    def logits(self, vectors: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            vectors = self.projection(vectors)
        return self.output(vectors)

    def forward(self, batch: Seq2SeqBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, V) under teacher forcing, and attention weights (B, T, S)."""
        state = self.encode(batch.source_ids, batch.source_lengths)
        vectors, weights, _ = self.decoder(batch.target_inputs, state)
        return self.logits(vectors), weights

    def loss(self, batch: Seq2SeqBatch, carry=None) -> LossOutput:
        """Cross-entropy per target token (label smoothing as configured), padding ignored."""
        logits, _ = self(batch)
        losses, plain, count = smoothed_cross_entropy(logits.flatten(0, 1), batch.target_outputs.flatten(),
                                                      pad_id=self.pad_id, smoothing=self.label_smoothing)
        return LossOutput(losses / count.clamp(min=1), plain, count, None)

    def step(self, prev_ids: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """One decoding step: (B,) ids -> (B, V) log-probabilities and the new state."""
        vectors, weights, state = self.decoder(prev_ids[:, None], state)
        return torch.log_softmax(self.logits(vectors[:, -1]).float(), dim=-1), state
