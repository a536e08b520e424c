"""The one stacked LSTM encoder every lstmnlp model is built on.

Shapes: B batch, T time, E embedding, H hidden, L layers, D directions (1 or 2).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmnlp.modules.cells import SteppedLSTMLayer, lstm_step, reverse_padded
from lstmnlp.modules.dropout import Dropout, WordDropout, dropout


class LSTMState(NamedTuple):
    """Recurrent state as a value: h and c, each (L*D, B, H), laid out as `nn.LSTM`'s.

    `cell` is None where it is unknown: the fused kernel run over a variable-length batch does
    not stop at each row's end, so only `hidden` (read from the outputs) is exact there.
    """

    hidden: torch.Tensor
    cell: torch.Tensor | None

    def select(self, index: torch.Tensor) -> "LSTMState":
        """Rows `index` of the batch (beam reordering)."""
        cell = None if self.cell is None else self.cell.index_select(1, index)
        return LSTMState(self.hidden.index_select(1, index), cell)

    @staticmethod
    def concat(states: Sequence["LSTMState"]) -> "LSTMState":
        """The states' batch rows one after another."""
        cells = [state.cell for state in states]
        cell = None if any(c is None for c in cells) else torch.cat(cells, dim=1)
        return LSTMState(torch.cat([state.hidden for state in states], dim=1), cell)

    def detach(self) -> "LSTMState":
        """Cut the graph (truncated back-propagation through time)."""
        return LSTMState(self.hidden.detach(), None if self.cell is None else self.cell.detach())


class EncoderOutput(NamedTuple):
    outputs: torch.Tensor  # (B, T, D*H): forward half first, then backward half; zero at padding
    final: LSTMState  # state after each sequence's last real token (cell None: see LSTMState)


class StackedLSTMEncoder(nn.Module):
    """Embedding -> dropout -> N LSTM layers (uni- or bidirectional), padded batches welcome.

    Uses the fused `nn.LSTM` unless peepholes or variational recurrent dropout ask for the
    stepped layer. Variable-length batches need no sorting: each layer and direction runs the
    fused kernel over the padded batch, the backward direction on rows reversed within their
    lengths, which is exact at every real position and 2.2x faster on CPU than packing
    (`pack_padded_sequence` leaves the oneDNN kernel); the final cell is then not known.
    """

    def __init__(self, *, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, pad_id: int = 0, dropout: float = 0.0,
                 embedding_dropout: float = 0.0, word_dropout: float = 0.0, weight_dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, peephole: bool = False,
                 init: str = "default", forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.weight_dropout = weight_dropout
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.embedding_dropout = Dropout(embedding_dropout) if embedding_dropout > 0 else nn.Identity()
        self.word_dropout = WordDropout(word_dropout) if word_dropout > 0 else nn.Identity()
        self.layer_dropout = Dropout(dropout)
        self.stepped = peephole or recurrent_dropout > 0
        if self.stepped:
            self.layers = nn.ModuleList(
                SteppedLSTMLayer(embedding_dim if layer == 0 else hidden_size * self.num_directions,
                                 hidden_size, peephole=peephole, recurrent_dropout=recurrent_dropout)
                for layer in range(num_layers) for _ in range(self.num_directions))
        else:
            self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                                dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)
        self.reset_parameters(init, forget_bias)

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.num_directions

    def reset_parameters(self, init: str, forget_bias: float) -> None:
        """Xavier or orthogonal recurrent weights; forget-gate bias `forget_bias` (Jozefowicz et al. 2015)."""
        hidden = self.hidden_size
        for name, weight in self.named_parameters():
            if name.startswith("embedding"):
                continue
            if "bias_ih" in name:
                nn.init.zeros_(weight)
                with torch.no_grad():
                    weight[hidden:2 * hidden] = forget_bias
            elif "bias_hh" in name:
                nn.init.zeros_(weight)
            elif "weight_ih" in name and init in ("xavier", "orthogonal"):
                for block in weight.data.chunk(4, dim=0):
                    nn.init.xavier_uniform_(block)
            elif "weight_hh" in name and init == "xavier":
                for block in weight.data.chunk(4, dim=0):
                    nn.init.xavier_uniform_(block)
            elif "weight_hh" in name and init == "orthogonal":
                for block in weight.data.chunk(4, dim=0):
                    nn.init.orthogonal_(block)

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> LSTMState:
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        zeros = torch.zeros(shape, device=device or self.embedding.weight.device)
        return LSTMState(zeros, zeros.clone())

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None,
                state: LSTMState | None = None, *, time_aligned: bool = True,
                offset: torch.Tensor | None = None) -> EncoderOutput:
        """Encode a batch.

        Args:
            ids: (B, T) token ids, padded at the end.
            lengths: (B,) real lengths; None when every row is full. Best on the host (pinned on
                CUDA): asking whether every row is full then need not wait for the device.
            state: initial state (L*D, B, H) pair; zeros when None.
            time_aligned: False lets the top layer's backward half come out reversed within each
                row's length (padding still zero), saving a reorder, for callers that pool with
                no regard to order (max, mean over time). Honoured by the fused path over a
                variable-length batch; elsewhere outputs are aligned anyway.
            offset: (B, T, E) added to the embedded tokens before their dropout (adversarial training).
        """
        embedded = self.embedding(ids)
        if offset is not None:
            embedded = embedded + offset
        embedded = self.embedding_dropout(self.word_dropout(embedded))  # (B, T, E)
        if state is None:
            state = self.initial_state(ids.size(0), ids.device)
        if self.stepped:
            return self._forward_stepped(embedded, lengths, state)
        return self._forward_fused(embedded, lengths, state, time_aligned)

    def _forward_fused(self, embedded: torch.Tensor, lengths: torch.Tensor | None,
                       state: LSTMState, time_aligned: bool = True) -> EncoderOutput:
        if lengths is not None and bool((lengths == embedded.size(1)).all()):
            lengths = None  # every row full: one call, final cell included
        one_step = embedded.size(1) == 1 and self.num_directions == 1 and state.cell is not None
        if one_step and lengths is None and not torch.is_grad_enabled() and type(self.lstm) is nn.LSTM:
            return self._step_with_weights(embedded[:, 0], state)
        if lengths is None:
            outputs, (hidden, cell) = self._run_lstm(embedded, (state.hidden, state.cell))
            return EncoderOutput(outputs, LSTMState(hidden, cell))  # outputs (B, T, D*H)
        if type(self.lstm) is not nn.LSTM:  # int8 dynamic quantization: no float weights to call with
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            outputs, (hidden, cell) = self.lstm(packed, (state.hidden, state.cell))
            outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=embedded.size(1))
            return EncoderOutput(outputs, LSTMState(hidden, cell))
        lengths = lengths.to(embedded.device, non_blocking=True)
        return self._forward_fused_padded(embedded, lengths, state, time_aligned)

    def _forward_fused_padded(self, embedded: torch.Tensor, lengths: torch.Tensor,
                              state: LSTMState, time_aligned: bool) -> EncoderOutput:
        """Layer by layer, direction by direction, with the fused LSTM's own weights."""
        steps = embedded.size(1)
        mask = (torch.arange(steps, device=embedded.device)[None, :] < lengths[:, None])[..., None]  # (B, T, 1)
        rows = torch.arange(embedded.size(0), device=embedded.device)
        inputs, hiddens = embedded, []
        for layer in range(self.num_layers):
            if layer > 0:
                inputs = dropout(inputs, self.lstm.dropout, self.training)
            directions = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                layer_input = inputs if direction == 0 else reverse_padded(inputs, lengths)
                outputs, _, _ = torch._VF.lstm(  # the op nn.LSTM itself calls
                    layer_input, (state.hidden[index:index + 1], state.cell[index:index + 1]),
                    self._layer_weights(layer, direction), True, 1, 0.0, self.training, False, True)
                hiddens.append(outputs[rows, lengths - 1])  # (B, H) after the last real token
                in_order = direction == 0 or (not time_aligned and layer == self.num_layers - 1)
                directions.append(outputs if in_order else reverse_padded(outputs, lengths))
            inputs = torch.cat(directions, dim=-1).masked_fill(~mask, 0.0)  # (B, T, D*H)
        return EncoderOutput(inputs, LSTMState(torch.stack(hiddens), None))

    def _step_with_weights(self, embedded: torch.Tensor, state: LSTMState) -> EncoderOutput:
        """One position of a unidirectional stack from the LSTM's weights (LM sampling): calling the
        fused module for a single position costs several times the step itself."""
        inputs, hiddens, cells = embedded, [], []  # embedded: (B, E)
        for layer in range(self.num_layers):
            if layer > 0:  # as nn.LSTM between layers (only ever active in training mode)
                inputs = dropout(inputs, self.lstm.dropout, self.training)
            w_ih, w_hh, b_ih, b_hh = self._layer_weights(layer, 0)
            hidden, cell = lstm_step(inputs, state.hidden[layer], state.cell[layer], w_ih, w_hh, b_ih + b_hh)
            hiddens.append(hidden)
            cells.append(cell)
            inputs = hidden
        return EncoderOutput(inputs[:, None], LSTMState(torch.stack(hiddens), torch.stack(cells)))

    def _layer_weights(self, layer: int, direction: int) -> list[torch.Tensor]:
        """One layer and direction's [W_ih, W_hh, b_ih, b_hh], DropConnect on W_hh when training."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        weights = [getattr(self.lstm, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if self.training and self.weight_dropout > 0:
            weights[1] = dropout(weights[1], self.weight_dropout, training=True)
        return weights

    def _run_lstm(self, inputs, state):
        """The fused LSTM, with DropConnect on its hidden-to-hidden weights while training
        (Merity et al., AWD-LSTM, arXiv:1708.02182)."""
        if not (self.training and self.weight_dropout > 0):
            return self.lstm(inputs, state)
        dropped = {name: dropout(weight, self.weight_dropout, training=True)
                   for name, weight in self.lstm.named_parameters() if name.startswith("weight_hh")}
        return torch.func.functional_call(self.lstm, dropped, (inputs, state), strict=False)

    def _forward_stepped(self, embedded: torch.Tensor, lengths: torch.Tensor | None,
                         state: LSTMState) -> EncoderOutput:
        batch, steps = embedded.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long)
        lengths = lengths.to(embedded.device)
        mask = torch.arange(steps, device=embedded.device)[None, :] < lengths[:, None]  # (B, T)
        inputs, hiddens, cells = embedded, [], []
        for layer in range(self.num_layers):
            if layer > 0:
                inputs = self.layer_dropout(inputs)
            directions = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                module = self.layers[index]
                layer_input = inputs if direction == 0 else reverse_padded(inputs, lengths)
                outputs, (hidden, cell) = module(layer_input, mask, (state.hidden[index], state.cell[index]))
                directions.append(outputs if direction == 0 else reverse_padded(outputs, lengths))
                hiddens.append(hidden)
                cells.append(cell)
            inputs = torch.cat(directions, dim=-1)  # (B, T, D*H)
        return EncoderOutput(inputs, LSTMState(torch.stack(hiddens), torch.stack(cells)))
