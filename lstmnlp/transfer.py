"""Transfer from a trained language model to a classifier (ULMFiT, Howard & Ruder 2018,
arXiv:1801.06146): copy the LM's embedding and LSTM layers, freeze them at first and thaw one
layer at a time from the top, and train them with a lower learning rate.

With a bidirectional classifier the LM fills the forward direction; the inputs of forward layers
above the first that come from the backward direction start at zero, so the forward half computes
exactly the LM's features at the start. The backward direction keeps its fresh initialization.
A backward LM (`model.backward`, read right to left) fills the backward direction instead, in
the same way (ULMFiT's bidirectional models: one classifier from each LM, their predictions
averaged, as `lstmnlp evaluate FORWARD_RUN BACKWARD_RUN` does).

A sequence autoencoder's encoder (Dai & Le 2015, arXiv:1511.01432) has the classifier's shape,
both directions included: it is copied whole.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lstmnlp.config import ModelConfig
from lstmnlp.errors import UserError
from lstmnlp.modules.encoder import StackedLSTMEncoder

LSTM_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def check_compatible(lm_config: ModelConfig, config: ModelConfig, lm_dir: Path, *, whole: bool = False) -> None:
    """Raise UserError unless the classifier's encoder can take the LM's (or, `whole`, the
    autoencoder's) weights."""
    if lm_config.backward and not config.bidirectional:
        raise UserError(f"model.init_from: {lm_dir} is a backward LM (model.backward) and this recipe's "
                        "encoder reads forward only; set model.bidirectional=true")
    for key in ("embedding_dim", "hidden_size", "num_layers") + (("bidirectional",) if whole else ()):
        if getattr(lm_config, key) != getattr(config, key):
            raise UserError(f"model.init_from: {lm_dir} has model.{key}={getattr(lm_config, key)} but this "
                            f"recipe has {getattr(config, key)}; set them equal")
    for model_config, where in ((lm_config, str(lm_dir)), (config, "this recipe")):
        if model_config.peephole or model_config.recurrent_dropout:
            raise UserError(f"model.init_from: {where} uses the stepped LSTM (peephole or recurrent_dropout); "
                            "transfer copies fused LSTM weights only")


@torch.no_grad()
def copy_language_model(lm_encoder: StackedLSTMEncoder, encoder: StackedLSTMEncoder, *,
                        backward: bool = False) -> list[list[nn.Parameter]]:
    """Copy the LM's embedding and layers into `encoder`'s forward direction (`backward`: a
    backward LM's into the backward direction).

    Returns the copied parameters in thawing order: top LSTM layer first, the embedding last.
    """
    encoder.embedding.weight.copy_(lm_encoder.embedding.weight)
    hidden = encoder.hidden_size
    suffix, reads = ("_reverse", slice(hidden, 2 * hidden)) if backward else ("", slice(0, hidden))
    groups: list[list[nn.Parameter]] = []
    for layer in range(encoder.num_layers):
        copied = []
        for kind in LSTM_PARAMETERS:
            source = getattr(lm_encoder.lstm, f"{kind}_l{layer}")
            target = getattr(encoder.lstm, f"{kind}_l{layer}{suffix}")
            if kind == "weight_ih" and target.shape != source.shape:  # (4H, 2H) input from both directions
                target.zero_()
                target[:, reads].copy_(source)  # the outputs of its own direction below
            else:
                target.copy_(source)
            copied.append(target)
        groups.append(copied)
    return [*reversed(groups), [encoder.embedding.weight]]


@torch.no_grad()
def copy_encoder(pretrained: StackedLSTMEncoder, encoder: StackedLSTMEncoder) -> list[list[nn.Parameter]]:
    """Copy an encoder of the same shape (an autoencoder's) into `encoder`, every direction.

    Returns the copied parameters in thawing order: top LSTM layer first, the embedding last."""
    encoder.embedding.weight.copy_(pretrained.embedding.weight)
    suffixes = [""] + (["_reverse"] if encoder.num_directions == 2 else [])
    groups: list[list[nn.Parameter]] = []
    for layer in range(encoder.num_layers):
        copied = []
        for kind in LSTM_PARAMETERS:
            for suffix in suffixes:
                target = getattr(encoder.lstm, f"{kind}_l{layer}{suffix}")
                target.copy_(getattr(pretrained.lstm, f"{kind}_l{layer}{suffix}"))
                copied.append(target)
        groups.append(copied)
    return [*reversed(groups), [encoder.embedding.weight]]


def thawing_schedule(groups: list[list[nn.Parameter]], every: int):
    """`frozen_at(step)` for the Trainer: all groups frozen before step `every`, then one more
    group thaws every `every` steps (ULMFiT's gradual unfreezing); `every` 0 freezes nothing."""

    def frozen_at(step: int) -> list[nn.Parameter]:
        if not every:
            return []
        thawed = step // every
        return [parameter for group in groups[thawed:] for parameter in group]

    return frozen_at
