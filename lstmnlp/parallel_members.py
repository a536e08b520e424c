"""`train.parallel_members: true`: a classifier ensemble's members trained at the same time, one
process each, with the CPU threads split between them.

A small LSTM does not keep two cores busy with one process: on SST-2's recipe two one-thread
processes made 1.35x the steps of one two-thread process in the same 120 s (EXPERIMENTS.md).
Each member writes its progress to member-K/train.log. The members run in sessions of their
own, so a Ctrl-C or SIGTERM reaches this process alone, which passes it on once to each member:
each writes its checkpoint and stops, and `--resume` continues them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from lstmnlp.errors import Interrupted, UserError

LOG_FILE = "train.log"


def threads_per_member(configured: int, count: int) -> int:
    """CPU threads for each of `count` members at once: train.threads if set, else an equal share."""
    if configured:
        return configured
    import torch

    return max(1, torch.get_num_threads() // count)


def train_at_once(jobs: list[tuple[Any, Path, bool]], data: Any, on_finished: Callable[[str], None]) -> None:
    """Train each (member config, folder, resume) of `jobs` in a process of its own, on the
    classifier's (train, valid) split `data`; `on_finished(folder name)` for each that finished,
    in member order, before anything is raised.

    Raises:
        Interrupted: a signal stopped the members (their checkpoints are written).
        UserError: a member failed; its one-line reason, or where its traceback is.
    """
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked thread pools
    outcomes = context.SimpleQueue()
    processes = [context.Process(target=_train_member, args=(outcomes, config, folder, resume, data))
                 for config, folder, resume in jobs]
    with _passed_on_signals(processes) as received:
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    reported: dict[str, tuple[int, str]] = {}
    while not outcomes.empty():
        name, code, message = outcomes.get()
        reported[name] = (code, message)
    failures = []
    for (_, folder, _), process in zip(jobs, processes):
        code, message = reported.get(folder.name, (process.exitcode or 1, ""))
        if code == 0:
            on_finished(folder.name)
        else:
            failures.append((folder, code, message))
    if not failures:
        return
    folder, code, message = failures[0]
    if received:
        raise Interrupted(f"{received[0].name}: the members' checkpoints are written in {folder.parent}; "
                          f"continue with --out {folder.parent} --resume", code)
    raise UserError(f"{folder.name}: {message}" if message else
                    f"{folder.name} failed (exit code {code}); its traceback is in {folder / LOG_FILE}")


@contextmanager
def _passed_on_signals(processes: list) -> Iterator[list[signal.Signals]]:
    """Inside: SIGINT and SIGTERM are sent on to every started member process and listed."""
    received: list[signal.Signals] = []

    def pass_on(number: int, frame) -> None:
        received.append(signal.Signals(number))
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, number)

    previous = {number: signal.signal(number, pass_on) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _train_member(outcomes, config, folder: Path, resume: bool, data: Any) -> None:
    """One member, in its own process and session, its output in folder/train.log."""
    os.setsid()  # off the terminal's process group: signals come from the parent, once
    log_file = open(folder / LOG_FILE, "a", encoding="utf-8", buffering=1)
    sys.stdout = sys.stderr = log_file  # an unexpected error's traceback lands here too
    from rich.console import Console

    from lstmnlp.classification import train_classifier
    from lstmnlp.progress import make_reporter

    console = Console(file=log_file, width=120)
    reporter = make_reporter(console, max_steps=config.train.max_steps, max_time=config.train.max_time)
    try:
        train_classifier(config, folder, reporter=reporter, log=console.print, data=data, resume=resume)
        outcomes.put((folder.name, 0, ""))
    except Interrupted as stop:
        outcomes.put((folder.name, stop.exit_code, str(stop)))
    except UserError as error:
        outcomes.put((folder.name, 2, str(error)))
