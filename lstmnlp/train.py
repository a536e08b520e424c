"""One Trainer for every task: it only calls `model.loss(batch, carry)`.

It owns the optimizer, the learning-rate schedule, clipping, bf16 autocast, budgets (epochs,
steps, seconds), validation, early stopping, the best/last checkpoints and metrics.jsonl.
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import torch

from lstmnlp import checkpoint
from lstmnlp.averaging import WeightAverage
from lstmnlp.config import TrainConfig
from lstmnlp.device_batches import one_ahead, to_device
from lstmnlp.distributed import World, any_rank, barrier, wrap
from lstmnlp.errors import Interrupted
from lstmnlp.optimization import lr_factor, make_optimizer
from lstmnlp.precision import autocast_dtype, pick_device
from lstmnlp.train_state import (EXIT_CODES, MetricsLog, StopSignals, capture_rng, cut_metrics, load_state,
                                 peak_rss_mb, restore_rng)


class Reporter(Protocol):
    """Where the Trainer shows progress (rich display, plain log lines, or nothing)."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_validation(self, step: int, metrics: dict[str, float]) -> None: ...


class SilentReporter:
    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        pass


@dataclass
class TrainResult:
    steps: int
    epochs: int
    elapsed_s: float
    stop_reason: str
    best_step: int
    best_metrics: dict[str, float]
    tokens_per_s: float


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def start_training(config: TrainConfig, *, rank: int = 0) -> torch.device:
    """Seed every generator (each distributed rank its own stream), set the CPU threads, and
    pick the device."""
    seed_everything(config.seed + rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    return pick_device(config.device)


@dataclass
class Position:
    """Where training stands; saved with every checkpoint so a run resumes exactly."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of `epoch` already trained on
    elapsed_s: float = 0.0  # training seconds so far (budgets count across resumes)


class Trainer:
    """Fits a model whose `loss(batch, carry)` returns a `LossOutput`."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig, run_dir: Path, *,
                 train_batches: Callable[[int], Iterable], validate: Callable[[], dict[str, float]],
                 metric: str = "valid_loss", higher_is_better: bool = False,
                 reporter: Reporter | None = None, device: torch.device | None = None,
                 meta: dict[str, Any] | None = None,
                 lr_scales: dict[int, float] | None = None,
                 frozen_at: Callable[[int], list[torch.nn.Parameter]] | None = None,
                 world: World | None = None) -> None:
        self.model = model
        self.world = world or World()  # torchrun ranks; rank 0 alone writes files
        self.config = config
        self.run_dir = Path(run_dir)
        self.train_batches = train_batches  # epoch -> batches, the same for the same epoch
        self.validate = validate
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.reporter = (reporter if self.world.is_main else None) or SilentReporter()
        self.device = device or torch.device("cpu")
        self.meta = meta  # meta.json contents, rewritten with the best step at every checkpoint
        self.frozen_at = frozen_at  # step -> parameters left untouched at that step (gradual unfreezing)
        self.optimizer = make_optimizer(model, config, lr_scales)
        self.autocast = autocast_dtype(config.precision, self.device)  # bf16, fp16 or None (fp32)
        # fp16 gradients underflow without loss scaling (Micikevicius et al. 2018); bf16 needs none.
        self.scaler = torch.amp.GradScaler(self.device.type) if self.autocast == torch.float16 else None
        self.log = MetricsLog(self.run_dir / checkpoint.METRICS, enabled=self.world.is_main)
        self.move_batch = to_device(self.device)  # CUDA: pinned memory, non-blocking copies
        self.compute_loss: Callable = model.loss  # model.loss, or its DistributedDataParallel wrapper
        self.best_value: float | None = None
        self.best_step = 0
        self.best_metrics: dict[str, float] = {}
        self.plateau_scale = 1.0
        self.bad_validations = 0
        self.last_train_record: dict[str, Any] = {}
        self.position = Position()
        self.carry: Any = None  # recurrent state carried between batches (truncated BPTT)
        self.average: WeightAverage | None = None  # train.average_decay > 0: validated and saved weights

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until a budget, early stopping or a signal; with `resume`, continue from the
        run's last checkpoint (weights, optimizer, RNG streams, data position, early stopping)."""
        self.model.to(self.device).train()
        saved_average = self._restore() if resume else None
        if self.config.average_decay:  # a run that averaged resumes its average, another starts one
            self.average = WeightAverage(self.model, self.config.average_decay)
            if saved_average is not None:
                self.average.load(saved_average)
        config, model, position = self.config, self.model, self.position
        self.compute_loss = wrap(model, self.world, self.device)
        started = time.perf_counter() - position.elapsed_s
        stop_reason, last_validated = "", position.step if resume else -1
        window_loss, window_count, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
        total_tokens, process_start = 0, time.perf_counter()
        with StopSignals() as signals:
            while not stop_reason:
                if config.max_epochs and position.epoch >= config.max_epochs:
                    stop_reason = "max_epochs"
                    break
                # Batches trained on before the checkpoint this run resumed from are skipped.
                remaining = itertools.islice(self.train_batches(position.epoch), position.batch, None)
                for group in batched(one_ahead(remaining, self.move_batch), config.accumulate):
                    self._set_lr(position.step, time.perf_counter() - started)
                    outputs = self._train_step(group, position.step)
                    position.step, position.batch = position.step + 1, position.batch + len(group)
                    step = position.step
                    for output in outputs:
                        tokens = output.count if output.tokens is None else output.tokens
                        window_loss, window_count = window_loss + output.total, window_count + output.count
                        window_tokens, total_tokens = window_tokens + tokens, total_tokens + tokens
                    if step % config.log_every == 0:
                        now = time.perf_counter()
                        record = self._train_record(step, now - started, float(window_loss) / max(int(window_count), 1),
                                                    float(window_tokens) / max(now - window_start, 1e-9))
                        self.log.write(record)
                        self.last_train_record = record
                        self.reporter.on_step(step, record)
                        window_loss, window_count, window_tokens, window_start = 0.0, 0, 0, now
                    position.elapsed_s = time.perf_counter() - started
                    if step % config.eval_every == 0:
                        last_validated = step
                        validation_started = time.perf_counter()
                        if self._validate(window_loss, window_count):
                            stop_reason = "early_stopping"
                        window_start += time.perf_counter() - validation_started  # tokens/s counts training only
                    if config.max_steps and step >= config.max_steps:
                        stop_reason = stop_reason or "max_steps"
                    if config.max_time and time.perf_counter() - started >= config.max_time:
                        stop_reason = stop_reason or "max_time"
                    # Every rank stops at the same step: one all-reduce of both flags (free alone).
                    signalled, stopping = any_rank([signals.received is not None, bool(stop_reason)], self.world)
                    if signalled:
                        self._stop_for(signals.received or signal.SIGTERM)
                    if stopping:
                        stop_reason = stop_reason or "max_time"
                        break
                else:
                    position.epoch, position.batch, self.carry = position.epoch + 1, 0, None
            position.elapsed_s = time.perf_counter() - started
            if last_validated != position.step:
                self._validate(window_loss, window_count)
        return TrainResult(position.step, position.epoch, position.elapsed_s, stop_reason, self.best_step,
                           self.best_metrics, float(total_tokens) / max(time.perf_counter() - process_start, 1e-9))

    def _train_step(self, batches: list, step: int) -> list:
        """One update from the summed gradients of `batches` (train.accumulate of them; fewer at
        an epoch's end), each batch's mean loss weighted 1 / len(batches); the recurrent state
        is carried from batch to batch. Under DistributedDataParallel only the last backward
        all-reduces."""
        outputs = []
        for index, batch in enumerate(batches):
            last = index == len(batches) - 1
            with (nullcontext() if last else no_sync(self.compute_loss)):
                with self._autocast():
                    output = self.compute_loss(batch, self.carry)
                loss = output.loss if len(batches) == 1 else output.loss / len(batches)
                (loss if self.scaler is None else self.scaler.scale(loss)).backward()
            self.carry = output.carry.detach() if output.carry is not None else None
            outputs.append(output)
        if self.frozen_at is not None:
            for parameter in self.frozen_at(step):
                parameter.grad = None  # the optimizer skips parameters without a gradient
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        if self.config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        if self.scaler is None:
            self.optimizer.step()
        else:  # skips the step when a gradient overflowed, and adapts the scale
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.average is not None:
            self.average.update()
        return outputs

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16,
                              enabled=self.autocast is not None)

    def _set_lr(self, step: int, elapsed: float) -> None:
        fractions = []
        if self.config.max_steps:
            fractions.append(step / self.config.max_steps)
        if self.config.max_time:
            fractions.append(elapsed / self.config.max_time)
        progress = max(fractions) if fractions else None
        lr = self.config.lr * lr_factor(self.config, step, progress, self.plateau_scale)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def _train_record(self, step: int, elapsed: float, loss: float, tokens_per_s: float) -> dict[str, Any]:
        return {"event": "train", "step": step, "elapsed_s": round(elapsed, 3), "train_loss": loss,
                "tokens_per_s": tokens_per_s, "lr": max(group["lr"] for group in self.optimizer.param_groups)}

    def _validate(self, window_loss: torch.Tensor | float, window_count: torch.Tensor | int) -> bool:
        """Validate, log, keep the best weights, checkpoint; True when early stopping says stop."""
        window_loss, window_count = float(window_loss), int(window_count)
        step = self.position.step
        with self._averaged():  # validated and kept as best: the averaged weights, if any
            with self._autocast():
                metrics = self.validate()
            value = metrics[self.metric]
            improved = self.best_value is None or (value > self.best_value if self.higher_is_better
                                                   else value < self.best_value)
            if improved and self.world.is_main:
                checkpoint.save_weights(self.model, self.run_dir / checkpoint.BEST_WEIGHTS)
        self.model.train()
        record = {"event": "valid", "step": step, "elapsed_s": round(self.position.elapsed_s, 3),
                  "train_loss": (window_loss / window_count if window_count
                                 else self.last_train_record.get("train_loss")),
                  "tokens_per_s": self.last_train_record.get("tokens_per_s"), **metrics, "best": improved,
                  "peak_rss_mb": round(peak_rss_mb(), 1)}
        if improved:
            self.best_value, self.best_step, self.best_metrics = value, step, dict(metrics)
            self.bad_validations = 0
        else:
            self.bad_validations += 1
            if self.config.schedule == "plateau":
                self.plateau_scale *= self.config.plateau_factor
        self.log.write(record)  # before the checkpoint: a resume cuts the log back to its step
        self._checkpoint()
        self.reporter.on_validation(step, record)
        return bool(self.config.patience) and self.bad_validations >= self.config.patience

    def _checkpoint(self) -> None:
        """Last weights and the whole trainer state, each written atomically (by rank 0)."""
        if not self.world.is_main:
            return
        with self._averaged():
            checkpoint.save_weights(self.model, self.run_dir / checkpoint.LAST_WEIGHTS)
        if self.config.keep_last:
            checkpoint.keep_step_copy(self.run_dir, self.position.step, self.config.keep_last)
        position = self.position
        checkpoint.save_trainer_state({
            "step": position.step, "epoch": position.epoch, "batch": position.batch,
            "elapsed_s": position.elapsed_s, "optimizer": self.optimizer.state_dict(),
            "best_value": self.best_value, "best_step": self.best_step, "best_metrics": self.best_metrics,
            "bad_validations": self.bad_validations, "plateau_scale": self.plateau_scale,
            "carry": None if self.carry is None else tuple(self.carry), "rng": capture_rng(),
            # The weights again, inside the same atomic file: a kill between writing last.safetensors
            # and this file must not pair new weights with an old optimizer and position.
            "model": self.model.state_dict(),
            "average": None if self.average is None else self.average.state(),
            "scaler": None if self.scaler is None else self.scaler.state_dict()},
            self.run_dir / checkpoint.TRAINER_STATE)
        if self.meta is not None:
            checkpoint.write_meta(self.run_dir, {**self.meta, "step": position.step, "best_step": self.best_step,
                                                 "best_metrics": self.best_metrics})

    def _restore(self) -> list[torch.Tensor] | None:
        """Load the run's last checkpoint; returns its weight average (None if it kept none)."""
        state = load_state(self.run_dir)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.position = Position(state["step"], state["epoch"], state["batch"], state["elapsed_s"])
        self.best_value, self.best_step = state["best_value"], state["best_step"]
        self.best_metrics, self.bad_validations = state["best_metrics"], state["bad_validations"]
        self.plateau_scale = state["plateau_scale"]
        self.carry = None if state["carry"] is None else tuple(t.to(self.device) for t in state["carry"])
        restore_rng(state["rng"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.world.is_main:
            cut_metrics(self.run_dir / checkpoint.METRICS, self.position.step)
        return state.get("average")

    def _averaged(self):
        """Inside: the model holds the averaged weights (train.average_decay), else its own."""
        return self.average.applied() if self.average is not None else nullcontext()

    def _stop_for(self, received: signal.Signals) -> None:
        """Checkpoint after a signal and leave through `Interrupted`."""
        self._checkpoint()
        self.log.write({"event": "interrupted", "step": self.position.step, "signal": received.name})
        raise Interrupted(f"{received.name} at step {self.position.step}: checkpoint written to {self.run_dir}; "
                          f"continue with --out {self.run_dir} --resume", EXIT_CODES[received])


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items; the last may be shorter."""
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


def no_sync(compute_loss):
    """DistributedDataParallel's `no_sync()` (gradients kept local), or nothing outside it."""
    return compute_loss.no_sync() if hasattr(compute_loss, "no_sync") else nullcontext()


def fit_run(trainer: Trainer, *, resume: bool = False) -> TrainResult:
    """Fit, write the result into meta.json (rank 0), then load the best weights for inference."""
    result = trainer.fit(resume=resume)
    if trainer.world.is_main and trainer.meta is not None:
        checkpoint.write_result_meta(trainer.run_dir, trainer.meta, result)
    barrier(trainer.world)
    checkpoint.load_weights(trainer.model, trainer.run_dir / checkpoint.BEST_WEIGHTS)
    trainer.model.eval()
    return result
