"""Training progress for people: a live rich display on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


def _format(metrics: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = []
    for key in keys:
        value = metrics.get(key)
        if value is None:
            continue
        parts.append(f"{key} {value:,.0f}" if key == "tokens_per_s" else f"{key} {value:.4f}")
    return "  ".join(parts)


class PlainReporter:
    """Periodic log lines (for files, pipes and CI)."""

    def __init__(self, console: Console, *, max_steps: int = 0, max_time: float = 0.0) -> None:
        self.console = console
        self.max_steps, self.max_time = max_steps, max_time
        self.started = time.perf_counter()
        self.last_print = 0.0

    def _eta(self, step: int) -> str:
        elapsed = time.perf_counter() - self.started
        remaining = []
        if self.max_time:
            remaining.append(self.max_time - elapsed)
        if self.max_steps and step:
            remaining.append(elapsed / step * (self.max_steps - step))
        return f"  eta {max(0.0, min(remaining)):.0f}s" if remaining else ""

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        if time.perf_counter() - self.last_print < 10.0:  # a line every 10 s at most
            return
        self.last_print = time.perf_counter()
        self.console.print(f"step {step:>6}  {_format(metrics, ('train_loss', 'tokens_per_s'))}{self._eta(step)}",
                           highlight=False)

    def on_validation(self, step: int, metrics: dict[str, Any]) -> None:
        keys = tuple(k for k in metrics if k.startswith("valid_"))
        mark = "  (best)" if metrics.get("best") else ""
        self.console.print(f"step {step:>6}  {_format(metrics, keys)}{mark}", highlight=False)


class RichReporter:
    """A live progress bar with step, loss, tokens/s, validation loss and ETA."""

    def __init__(self, console: Console, *, max_steps: int = 0, max_time: float = 0.0) -> None:
        self.console = console
        self.max_steps, self.max_time = max_steps, max_time
        self.started = time.perf_counter()
        self.valid_text = ""
        self.progress = Progress(TextColumn("[bold]step {task.fields[step]}"), BarColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                 console=console, transient=False)
        total = 1.0 if (max_steps or max_time) else None
        self.task = self.progress.add_task("train", total=total, step=0, info="starting")
        self.progress.start()

    def _fraction(self, step: int) -> float:
        fractions = []
        if self.max_steps:
            fractions.append(step / self.max_steps)
        if self.max_time:
            fractions.append((time.perf_counter() - self.started) / self.max_time)
        return min(1.0, max(fractions)) if fractions else 0.0

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        info = _format(metrics, ("train_loss", "tokens_per_s")) + self.valid_text
        self.progress.update(self.task, completed=self._fraction(step), step=step, info=info)

    def on_validation(self, step: int, metrics: dict[str, Any]) -> None:
        value = metrics.get("valid_loss")
        self.valid_text = f"  valid_loss {value:.4f}" if value is not None else ""
        self.progress.update(self.task, completed=self._fraction(step), step=step)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(console: Console, *, max_steps: int, max_time: float):
    """Rich display on a terminal, plain lines otherwise."""
    if console.is_terminal and sys.stdout.isatty():
        return RichReporter(console, max_steps=max_steps, max_time=max_time)
    return PlainReporter(console, max_steps=max_steps, max_time=max_time)
