"""Stacked LSTM decoder with attention and optional input feeding (Luong et al., arXiv:1508.04025).

Shapes: B batch, T target steps, S source, H decoder hidden, K encoder output, E embedding,
L decoder layers, V target vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lstmnlp.modules.attention import Attention
from lstmnlp.modules.cells import lstm_cell, lstm_step
from lstmnlp.modules.dropout import Dropout, dropout


class DecoderState(NamedTuple):
    """Everything a decoding step needs, as a value; `select` reorders rows for beam search.

    In beam search the R = B x G rows are G beams for each of B sentences (sentence-major), while
    the encoder memory, keys and mask stay one row per sentence: they are equal across a
    sentence's beams, so they are neither copied G times nor read G times by attention."""

    hidden: torch.Tensor  # (L, R, H)
    cell: torch.Tensor  # (L, R, H)
    feed: torch.Tensor  # (R, H) previous attentional vector (input feeding); zeros at the start
    memory: torch.Tensor  # (B, S, K) encoder outputs
    projected: torch.Tensor  # (B, S, *) attention keys, precomputed
    mask: torch.Tensor  # (B, S) True at real source tokens

    @property
    def group(self) -> int:
        """Rows per sentence (the beam size in beam search, else 1)."""
        return self.feed.size(0) // max(self.memory.size(0), 1)

    def expand_beams(self, beam_size: int) -> "DecoderState":
        """Each row becomes `beam_size` consecutive rows; the per-sentence parts stay as they are."""
        return self._replace(hidden=self.hidden.repeat_interleave(beam_size, dim=1),
                             cell=self.cell.repeat_interleave(beam_size, dim=1),
                             feed=self.feed.repeat_interleave(beam_size, dim=0))

    def reorder_beams(self, index: torch.Tensor) -> "DecoderState":
        """`select` for an index that keeps every row within its sentence (beam search)."""
        return self._replace(hidden=self.hidden.index_select(1, index), cell=self.cell.index_select(1, index),
                             feed=self.feed.index_select(0, index))

    def select(self, index: torch.Tensor) -> "DecoderState":
        """Rows `index`; with beams, it must pick whole sentences (all G rows of each, in order)."""
        group = self.group
        sentences = index if group == 1 else index.view(-1, group)[:, 0] // group
        return DecoderState(self.hidden.index_select(1, index), self.cell.index_select(1, index),
                            self.feed.index_select(0, index), self.memory.index_select(0, sentences),
                            self.projected.index_select(0, sentences), self.mask.index_select(0, sentences))


class AttentionDecoder(nn.Module):
    """y_{t-1} (+ previous attentional vector) -> LSTM -> attention -> tanh(W[c; h]) -> logits.

    With `attention="none"` the source reaches the decoder only through its start state (Sutskever
    et al. 2014; the sequence autoencoder of Dai & Le 2015): the LSTM output is the vector."""

    def __init__(self, *, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int,
                 encoder_size: int, attention: str, input_feeding: bool, dropout: float,
                 pad_id: int = 0) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.input_feeding = hidden_size, num_layers, input_feeding
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.embedding_dropout = Dropout(dropout)
        input_size = embedding_dim + (hidden_size if input_feeding else 0)
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        if attention == "none" and input_feeding:
            raise ValueError("input feeding needs attention")
        self.attention = (None if attention == "none" else
                          Attention(attention, query_size=hidden_size, key_size=encoder_size,
                                    attention_size=hidden_size))
        self.bridge = nn.Linear(encoder_size, hidden_size)  # encoder final state -> decoder start
        self.combine = (None if self.attention is None else  # attentional vector
                        nn.Linear(encoder_size + hidden_size, hidden_size))
        self.output_dropout = Dropout(dropout)
        self._cast_cache: dict[int, tuple] = {}  # layer -> (weights' identity, bf16 copies) for decoding
        with torch.no_grad():  # forget-gate bias 1 (Jozefowicz et al. 2015)
            for name, parameter in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    parameter[hidden_size:2 * hidden_size] = 1.0

    def initial_state(self, memory: torch.Tensor, summary: torch.Tensor, mask: torch.Tensor) -> DecoderState:
        """Start state from encoder outputs (B, S, K) and a (B, K) summary of the source."""
        start = torch.tanh(self.bridge(summary))  # (B, H)
        hidden = start[None].expand(self.num_layers, -1, -1).contiguous()  # (L, B, H)
        keys = memory if self.attention is None else self.attention.project_keys(memory)
        return DecoderState(hidden, torch.zeros_like(hidden), torch.zeros_like(start), memory, keys, mask)

    def forward(self, prev_ids: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """Attentional vectors (B, T, H), attention weights (B, T, S) and the state after step T.

        Steps: 1. embed y_{t-1}; 2. with input feeding, append the previous attentional vector
        and step the LSTM one position at a time, else run it over all T at once; 3. attend with
        the LSTM output as query; 4. combine context and output through tanh(W[c; h]).
        """
        embedded = self.embedding_dropout(self.embedding(prev_ids))  # (B, T, E)
        quantized = type(self.lstm) is not nn.LSTM  # int8 dynamic quantization: no float weights
        if not self.input_feeding and (embedded.size(1) > 1 or quantized):
            outputs, (hidden, cell) = self.lstm(embedded, (state.hidden, state.cell))  # (B, T, H)
            vectors, weights = self._attend(outputs, state)
            return vectors, weights, state._replace(hidden=hidden, cell=cell, feed=vectors[:, -1])
        if quantized:
            return self._feed_with_module(embedded, state)
        return self._steps_with_weights(embedded, state)

    def _steps_with_weights(self, embedded: torch.Tensor,
                            state: DecoderState) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """Step by step with the LSTM's own weights: with input feeding in training, and for
        every one-token decoding step (calling the fused module for one position costs more than
        the step itself: beam search ran 4.7x faster this way).

        Layer 0's input projection of all T embeddings is one matrix product up front; with input
        feeding each step multiplies [feed; h] by one stacked matrix."""
        size = embedded.size(-1)
        weights = [self._layer_weights(layer, embedded.device.type) for layer in range(self.num_layers)]
        w_ih, w_hh, bias = weights[0]
        projected = nn.functional.linear(embedded.to(w_ih.dtype), w_ih[:, :size], bias)  # (B, T, 4H)
        # (4H, H + H) for [feed; h_{t-1}] with input feeding, else (4H, H) for h_{t-1}
        recurrent = torch.cat([w_ih[:, size:], w_hh], dim=1) if self.input_feeding else w_hh
        hidden, cell = list(state.hidden.unbind(0)), list(state.cell.unbind(0))  # L x (B, H)
        feed, all_vectors, all_weights = state.feed, [], []
        for step in range(embedded.size(1)):
            step_input = hidden[0].to(recurrent.dtype)
            if self.input_feeding:
                step_input = torch.cat([feed.to(recurrent.dtype), step_input], dim=-1)
            gates = projected[:, step] + nn.functional.linear(step_input, recurrent)
            hidden[0], cell[0] = lstm_cell(gates, cell[0])
            for layer in range(1, self.num_layers):
                below = dropout(hidden[layer - 1], self.lstm.dropout, self.training)
                hidden[layer], cell[layer] = lstm_step(below, hidden[layer], cell[layer], *weights[layer])
            vector, weights_t = self._attend(hidden[-1][:, None], state)
            feed = vector[:, 0]
            all_vectors.append(vector)
            all_weights.append(weights_t)
        state = state._replace(hidden=torch.stack(hidden), cell=torch.stack(cell), feed=feed)
        return torch.cat(all_vectors, dim=1), torch.cat(all_weights, dim=1), state

    def _layer_weights(self, layer: int, device_type: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """W_ih, W_hh and b_ih + b_hh of one layer, cast once to the autocast type if it is on
        (autocast would cast them again at every step: only leaf tensors are cached). Without
        gradients (decoding) the cast copies are kept until the weights change in place."""
        lstm = self.lstm
        raw = tuple(getattr(lstm, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        if not torch.is_autocast_enabled(device_type):
            return raw[0], raw[1], raw[2] + raw[3]
        dtype = torch.get_autocast_dtype(device_type)
        if torch.is_grad_enabled():  # training: the casts belong to this step's graph
            return raw[0].to(dtype), raw[1].to(dtype), (raw[2] + raw[3]).to(dtype)
        key = (dtype, tuple((tensor.data_ptr(), tensor._version) for tensor in raw))
        cached = self._cast_cache.get(layer)
        if cached is None or cached[0] != key:
            cached = key, (raw[0].to(dtype), raw[1].to(dtype), (raw[2] + raw[3]).to(dtype))
            self._cast_cache[layer] = cached
        return cached[1]

    def _feed_with_module(self, embedded: torch.Tensor,
                          state: DecoderState) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """Input feeding by calling the LSTM module one position at a time."""
        hidden, cell, feed = state.hidden, state.cell, state.feed
        all_vectors, all_weights = [], []
        for step in range(embedded.size(1)):
            step_input = torch.cat([embedded[:, step], feed.to(embedded.dtype)], dim=-1)[:, None]  # (B, 1, E+H)
            output, (hidden, cell) = self.lstm(step_input, (hidden, cell))  # (B, 1, H)
            vector, weights = self._attend(output, state)
            feed = vector[:, 0]
            all_vectors.append(vector)
            all_weights.append(weights)
        state = state._replace(hidden=hidden, cell=cell, feed=feed)
        return torch.cat(all_vectors, dim=1), torch.cat(all_weights, dim=1), state

    def _attend(self, outputs: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention with `outputs` (R, T, H) as queries, then the attentional vectors (R, T, H).
        A sentence's G beam rows attend as G x T queries of that sentence's one memory row.
        Without attention the outputs are the vectors and the weights are zeros."""
        rows, steps, group = outputs.size(0), outputs.size(1), state.group
        if self.attention is None:
            weights = outputs.new_zeros(rows, steps, state.memory.size(1))
            return self.output_dropout(outputs), weights
        queries = outputs.reshape(rows // group, group * steps, -1)  # (B, G*T, H)
        contexts, weights = self.attention(queries, state.memory, state.projected, state.mask)  # (B, G*T, K)
        contexts, weights = contexts.reshape(rows, steps, -1), weights.reshape(rows, steps, -1)
        vectors = torch.tanh(self.combine(torch.cat([contexts, outputs], dim=-1)))  # (R, T, H)
        return self.output_dropout(vectors), weights
