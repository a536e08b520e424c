"""A stepped LSTM layer for what the fused kernel cannot do: peepholes and variational dropout.

The fused `nn.LSTM` runs the whole sequence in one C++ call; this layer loops over time in
Python, so it is slower: 0.54-0.59x of the fused kernel on the 2x512 char LM (see
benchmarks/train_throughput.py --peephole). The gate order
(input, forget, cell, output) and weight shapes match `nn.LSTM`, so one initializer serves both.
"""

from __future__ import annotations

import torch
from torch import nn


def lstm_cell(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from pre-activations (B, 4H) in nn.LSTM's gate order (i, f, g, o);
    the cell arithmetic runs in float32 under autocast. Returns h and c, each (B, H)."""
    in_gate, forget_gate, cell_gate, out_gate = gates.float().chunk(4, dim=-1)
    cell = torch.sigmoid(forget_gate) * cell.float() + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
    return torch.sigmoid(out_gate) * torch.tanh(cell), cell


def lstm_step(inputs: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor, w_ih: torch.Tensor,
              w_hh: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One position of one layer from nn.LSTM-shaped weights (`bias` = b_ih + b_hh); inputs are
    cast to the weights' type (bf16 copies under autocast). Returns h and c, each (B, H)."""
    gates = (nn.functional.linear(inputs.to(w_ih.dtype), w_ih, bias)
             + nn.functional.linear(hidden.to(w_hh.dtype), w_hh))  # (B, 4H)
    return lstm_cell(gates, cell)


class SteppedLSTMLayer(nn.Module):
    """One direction of one LSTM layer.

    Peepholes follow Gers & Schmidhuber (2000): the input and forget gates see c_{t-1}, the
    output gate sees c_t, through diagonal weights. Recurrent dropout is a variational mask on
    h_{t-1}, sampled once per sequence (Gal & Ghahramani, arXiv:1512.05287).
    """

    def __init__(self, input_size: int, hidden_size: int, *, peephole: bool = False,
                 recurrent_dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.recurrent_dropout = recurrent_dropout
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.zeros(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.zeros(4 * hidden_size))
        self.peephole = nn.Parameter(torch.zeros(3, hidden_size)) if peephole else None
        bound = hidden_size ** -0.5
        for weight in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run the layer over time.

        Args:
            inputs: (B, T, I) inputs.
            mask: (B, T) True at real tokens; state is carried unchanged through padding.
            state: (h, c), each (B, H).

        Returns:
            outputs (B, T, H), zero at padding, and the final (h, c) at each sequence's end.
        """
        hidden, cell = state
        projected = torch.nn.functional.linear(inputs, self.weight_ih, self.bias_ih + self.bias_hh)  # (B, T, 4H)
        drop_mask = None
        if self.training and self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            drop_mask = torch.bernoulli(hidden.new_full(hidden.shape, keep)) / keep  # (B, H)
        outputs = []
        for step in range(inputs.size(1)):
            recurrent = hidden if drop_mask is None else hidden * drop_mask
            gates = projected[:, step] + recurrent @ self.weight_hh.t()  # (B, 4H)
            in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, dim=-1)
            if self.peephole is not None:
                in_gate = in_gate + cell * self.peephole[0]
                forget_gate = forget_gate + cell * self.peephole[1]
            new_cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
            if self.peephole is not None:
                out_gate = out_gate + new_cell * self.peephole[2]
            new_hidden = torch.sigmoid(out_gate) * torch.tanh(new_cell)
            real = mask[:, step, None]  # (B, 1)
            hidden = torch.where(real, new_hidden, hidden)
            cell = torch.where(real, new_cell, cell)
            outputs.append(new_hidden * real)
        return torch.stack(outputs, dim=1), (hidden, cell)


def reverse_padded(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of (B, T, ...) within its own length, leaving padding in place."""
    batch, steps = values.shape[:2]
    positions = torch.arange(steps, device=values.device)  # (T,)
    lengths = lengths.to(values.device)[:, None]  # (B, 1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (B, T)
    rows = index + torch.arange(batch, device=values.device)[:, None] * steps  # into (B*T, ...)
    # Whole rows through index_select: 2x faster forward + backward than a gather over every element.
    return values.reshape(batch * steps, *values.shape[2:]).index_select(0, rows.flatten()).view_as(values)
