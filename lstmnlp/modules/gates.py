"""Recompute an LSTM's gates for inspection.

The fused `nn.LSTM` returns only hidden states, so the gates of a unidirectional
StackedLSTMEncoder are recomputed here, step by step, from its own weights (the same equations
and gate order, input/forget/cell/output). `trace_gates` is the documented hook that `lstmnlp
inspect` uses; tests check that its hidden states equal the fused ones.

Shapes: T time, H hidden.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lstmnlp.modules.encoder import StackedLSTMEncoder


class GateTrace(NamedTuple):
    """One layer's activations over a sequence, each (T, H)."""

    input_gate: torch.Tensor
    forget_gate: torch.Tensor
    output_gate: torch.Tensor
    cell: torch.Tensor
    hidden: torch.Tensor


def layer_weights(encoder: StackedLSTMEncoder, layer: int):
    """(weight_ih, weight_hh, bias_ih, bias_hh, peephole or None) of one forward layer."""
    if encoder.stepped:
        module = encoder.layers[layer * encoder.num_directions]
        return module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh, module.peephole
    lstm = encoder.lstm
    return (getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}"),
            getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}"), None)


@torch.no_grad()
def trace_gates(encoder: StackedLSTMEncoder, ids: torch.Tensor) -> list[GateTrace]:
    """Gate activations, cell and hidden states of every layer for one sequence `ids` (T,),
    from a zero state, in eval mode (no dropout)."""
    if encoder.num_directions != 1:
        raise ValueError("gate tracing is for unidirectional encoders")
    inputs = encoder.embedding(ids.to(encoder.embedding.weight.device)).float()  # (T, E)
    traces = []
    for layer in range(encoder.num_layers):
        weight_ih, weight_hh, bias_ih, bias_hh, peephole = (None if w is None else w.float()
                                                             for w in layer_weights(encoder, layer))
        projected = inputs @ weight_ih.t() + bias_ih + bias_hh  # (T, 4H)
        hidden = inputs.new_zeros(encoder.hidden_size)
        cell = inputs.new_zeros(encoder.hidden_size)
        rows: dict[str, list[torch.Tensor]] = {name: [] for name in GateTrace._fields}
        for step in range(inputs.size(0)):
            in_gate, forget_gate, cell_gate, out_gate = (projected[step] + weight_hh @ hidden).chunk(4)
            if peephole is not None:
                in_gate, forget_gate = in_gate + cell * peephole[0], forget_gate + cell * peephole[1]
            in_gate, forget_gate = torch.sigmoid(in_gate), torch.sigmoid(forget_gate)
            cell = forget_gate * cell + in_gate * torch.tanh(cell_gate)
            if peephole is not None:
                out_gate = out_gate + cell * peephole[2]
            out_gate = torch.sigmoid(out_gate)
            hidden = out_gate * torch.tanh(cell)
            for name, value in zip(GateTrace._fields, (in_gate, forget_gate, out_gate, cell, hidden)):
                rows[name].append(value)
        trace = GateTrace(*(torch.stack(rows[name]) for name in GateTrace._fields))
        traces.append(trace)
        inputs = trace.hidden  # (T, H): the next layer's input
    return traces
