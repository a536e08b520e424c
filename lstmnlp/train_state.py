"""The Trainer's record keeping: metrics.jsonl and peak memory, and what it needs to stop and
resume exactly: RNG streams as plain values, the metrics log cut back to a checkpoint, and a
guard that turns SIGINT/SIGTERM into a clean stop.

Everything saved here loads with `torch.load(weights_only=True)`: tensors, numbers, strings,
tuples, lists and dicts only, never pickled objects.
"""

from __future__ import annotations

import json
import random
import signal
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmnlp import checkpoint
from lstmnlp.errors import UserError

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MetricsLog:
    """Appends one JSON object per event to metrics.jsonl."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled  # only rank 0 of a distributed run writes

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position,
                                                     has_gauss, cached),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_state(run_dir: Path) -> dict[str, Any]:
    """The trainer state of a run, read without unpickling objects."""
    path = run_dir / checkpoint.TRAINER_STATE
    if not path.is_file():
        raise UserError(f"{run_dir}: nothing to resume (no {checkpoint.TRAINER_STATE}; the run stopped "
                        "before its first checkpoint)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols before refusing
            return torch.load(path, weights_only=True)
    except Exception:  # a truncated file or a pickle of arbitrary objects: both refused, nothing runs
        raise UserError(f"{path}: refused: damaged, or not plain data (pickled objects are never loaded); "
                        "train again without --resume into another --out") from None


def cut_metrics(path: Path, step: int) -> None:
    """Drop metrics.jsonl records written after `step` (the checkpoint a run resumes from), so the
    log continues without repeated steps."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
    checkpoint.atomic_write_text(path, "".join(line + "\n" for line in kept))


class StopSignals:
    """Context manager: SIGINT/SIGTERM set `received` (the loop stops after the current step);
    a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.previous: dict[signal.Signals, Any] = {}

    def _handle(self, number: int, frame) -> None:
        if self.received is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(number)

    def __enter__(self) -> "StopSignals":
        try:
            for number in EXIT_CODES:
                self.previous[number] = signal.signal(number, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self.previous.clear()
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
