"""int8 CPU inference: dynamic quantization of the LSTM and Linear layers (weights stored as
int8, activations quantized on the fly; Jacob et al. 2018). Embeddings stay in float."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from lstmnlp.errors import UserError


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy-free, in-place-converted model for CPU inference (eval mode)."""
    if next(model.parameters()).device.type != "cpu":
        raise UserError("--quantize int8 is for CPU inference")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao eager quantization warns that it moves to torchao
        return torch.ao.quantization.quantize_dynamic(model.eval(), {nn.LSTM, nn.Linear}, dtype=torch.qint8)


def apply_quantize(model: nn.Module, quantize: str) -> nn.Module:
    """`--quantize` option: '' keeps the model, 'int8' quantizes it."""
    if not quantize:
        return model
    if quantize != "int8":
        raise UserError(f"--quantize {quantize!r}: the only choice is int8")
    return quantize_int8(model)
