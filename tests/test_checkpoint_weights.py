"""save_weights / load_weights: tied tensors stored once, and weights that are views of one flat
buffer (as cuDNN keeps an LSTM's on a GPU) written like any others."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from lstmnlp.checkpoint import load_weights, save_weights
from lstmnlp.errors import UserError


class TiedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(11, 6)
        self.lstm = nn.LSTM(6, 6, num_layers=2)
        self.output = nn.Linear(6, 11)
        self.output.weight = self.embedding.weight  # weight tying


def _flatten_like_cudnn(lstm: nn.LSTM) -> None:
    """Make every LSTM weight a view into one buffer, as cuDNN's flatten_parameters does."""
    flat = torch.cat([weight.detach().reshape(-1) for weight in lstm._flat_weights])
    offset = 0
    for weight in lstm._flat_weights:
        weight.data = flat[offset:offset + weight.numel()].view_as(weight)
        offset += weight.numel()


def test_flat_buffer_and_tied_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TiedLSTM()
    _flatten_like_cudnn(model.lstm)
    assert model.lstm.weight_ih_l0.untyped_storage().data_ptr() == model.lstm.weight_hh_l1.untyped_storage().data_ptr()
    save_weights(model, tmp_path / "model.safetensors")
    stored = load_file(tmp_path / "model.safetensors")
    assert "embedding.weight" in stored and "output.weight" not in stored  # the tie is stored once
    fresh = TiedLSTM()
    load_weights(fresh, tmp_path / "model.safetensors")
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    assert fresh.output.weight is fresh.embedding.weight


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    save_weights(nn.Linear(3, 2), tmp_path / "model.safetensors")
    with pytest.raises(UserError, match="do not match|cannot load"):
        load_weights(TiedLSTM(), tmp_path / "model.safetensors")
