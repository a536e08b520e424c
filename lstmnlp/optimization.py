"""The optimizer and the learning-rate schedule the Trainer steps with."""

from __future__ import annotations

import math

import torch

from lstmnlp.config import TrainConfig


def make_optimizer(model: torch.nn.Module, config: TrainConfig,
                   lr_scales: dict[int, float] | None = None) -> torch.optim.Optimizer:
    """The configured optimizer; parameters whose id is in `lr_scales` get that share of the LR
    (discriminative fine-tuning, Howard & Ruder 2018), kept as the group's `lr_scale`."""
    lr_scales = lr_scales or {}
    by_scale: dict[float, list[torch.nn.Parameter]] = {}
    for parameter in model.parameters():
        if parameter.requires_grad:
            by_scale.setdefault(lr_scales.get(id(parameter), 1.0), []).append(parameter)
    groups = [{"params": params, "lr_scale": scale} for scale, params in by_scale.items()]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, weight_decay=config.weight_decay)
    # Fused Adam: one kernel over all parameters instead of a dozen elementwise passes (about 6 %
    # of a translation step on 2 CPU cores); it needs floating-point parameters on CPU or CUDA.
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])
    adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return adam(groups, lr=config.lr, betas=(0.9, config.adam_beta2), weight_decay=config.weight_decay,
                fused=fused or None)


def lr_factor(config: TrainConfig, step: int, progress: float | None, plateau_scale: float) -> float:
    """Multiplier of `config.lr`: linear warmup, then the schedule over training `progress` in [0, 1].

    `progress` is the furthest of steps/max_steps and seconds/max_time (None when no budget is
    known, in which case cosine and linear stay flat).
    """
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "plateau":
        return warmup * plateau_scale
    if config.schedule == "constant" or progress is None:
        return warmup
    progress = min(max(progress, 0.0), 1.0)
    floor = config.min_lr_ratio
    if config.schedule == "cosine":
        return warmup * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return warmup * (floor + (1 - floor) * (1 - progress))
