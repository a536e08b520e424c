"""Stacked LSTM decoder with attention and optional input feeding (Luong et al., arXiv:1508.04025).

Shapes: B batch, T target steps, S source, H decoder hidden, K encoder output, E embedding,
L decoder layers, V target vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lstmnlp.modules.attention import Attention


class DecoderState(NamedTuple):
    """Everything a decoding step needs, as a value; `select` reorders rows for beam search."""

    hidden: torch.Tensor  # (L, B, H)
    cell: torch.Tensor  # (L, B, H)
    feed: torch.Tensor  # (B, H) previous attentional vector (input feeding); zeros at the start
    memory: torch.Tensor  # (B, S, K) encoder outputs
    projected: torch.Tensor  # (B, S, *) attention keys, precomputed
    mask: torch.Tensor  # (B, S) True at real source tokens

    def select(self, index: torch.Tensor) -> "DecoderState":
        return DecoderState(self.hidden.index_select(1, index), self.cell.index_select(1, index),
                            self.feed.index_select(0, index), self.memory.index_select(0, index),
                            self.projected.index_select(0, index), self.mask.index_select(0, index))


class AttentionDecoder(nn.Module):
    """y_{t-1} (+ previous attentional vector) -> LSTM -> attention -> tanh(W[c; h]) -> logits."""

    def __init__(self, *, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int,
                 encoder_size: int, attention: str, input_feeding: bool, dropout: float,
                 pad_id: int = 0) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.input_feeding = hidden_size, num_layers, input_feeding
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(dropout)
        input_size = embedding_dim + (hidden_size if input_feeding else 0)
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.attention = Attention(attention, query_size=hidden_size, key_size=encoder_size,
                                   attention_size=hidden_size)
        self.bridge = nn.Linear(encoder_size, hidden_size)  # encoder final state -> decoder start
        self.combine = nn.Linear(encoder_size + hidden_size, hidden_size)  # attentional vector
        self.output_dropout = nn.Dropout(dropout)
        with torch.no_grad():  # forget-gate bias 1 (Jozefowicz et al. 2015)
            for name, parameter in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    parameter[hidden_size:2 * hidden_size] = 1.0

    def initial_state(self, memory: torch.Tensor, summary: torch.Tensor, mask: torch.Tensor) -> DecoderState:
        """Start state from encoder outputs (B, S, K) and a (B, K) summary of the source."""
        start = torch.tanh(self.bridge(summary))  # (B, H)
        hidden = start[None].expand(self.num_layers, -1, -1).contiguous()  # (L, B, H)
        return DecoderState(hidden, torch.zeros_like(hidden), torch.zeros_like(start), memory,
                            self.attention.project_keys(memory), mask)

    def forward(self, prev_ids: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """Attentional vectors (B, T, H), attention weights (B, T, S) and the state after step T.

        Steps: 1. embed y_{t-1}; 2. with input feeding, append the previous attentional vector
        and step the LSTM one position at a time, else run it over all T at once; 3. attend with
        the LSTM output as query; 4. combine context and output through tanh(W[c; h]).
        """
        embedded = self.embedding_dropout(self.embedding(prev_ids))  # (B, T, E)
        if not self.input_feeding:
            outputs, (hidden, cell) = self.lstm(embedded, (state.hidden, state.cell))  # (B, T, H)
            vectors, weights = self._attend(outputs, state)
            return vectors, weights, state._replace(hidden=hidden, cell=cell, feed=vectors[:, -1])
        hidden, cell, feed = state.hidden, state.cell, state.feed
        all_vectors, all_weights = [], []
        for step in range(prev_ids.size(1)):
            step_input = torch.cat([embedded[:, step], feed.to(embedded.dtype)], dim=-1)[:, None]  # (B, 1, E+H)
            output, (hidden, cell) = self.lstm(step_input, (hidden, cell))  # (B, 1, H)
            vector, weights = self._attend(output, state)
            feed = vector[:, 0]
            all_vectors.append(vector)
            all_weights.append(weights)
        state = state._replace(hidden=hidden, cell=cell, feed=feed)
        return torch.cat(all_vectors, dim=1), torch.cat(all_weights, dim=1), state

    def _attend(self, outputs: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor]:
        contexts, weights = self.attention(outputs, state.memory, state.projected, state.mask)  # (B, T, K)
        vectors = torch.tanh(self.combine(torch.cat([contexts, outputs], dim=-1)))  # (B, T, H)
        return self.output_dropout(vectors), weights
