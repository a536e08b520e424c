"""Shared fixtures: paths to the real corpora, and helpers to run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: one thread each, for it and its CLI runs
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def require_data(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def run_cli(*args: str, cwd: Path | None = None, stdin: str | bytes | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m lstmnlp ARGS` in a real process; stdout/stderr as text."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    process = subprocess.run([sys.executable, "-m", "lstmnlp", *args], cwd=cwd, input=data,
                             capture_output=True, timeout=timeout, env=env)
    return subprocess.CompletedProcess(process.args, process.returncode,
                                       process.stdout.decode("utf-8", "replace"),
                                       process.stderr.decode("utf-8", "replace"))


def answers_at_terminal(*args: str, lines: list[str], timeout: float = 120) -> list[str]:
    """Run `python -m lstmnlp ARGS` with a terminal as stdin, as a user typing: each line is typed
    only once the answer to the one before it has come (one stdout line), then Ctrl-D."""
    import pty
    import select

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "lstmnlp", *args], stdin=slave, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    os.close(slave)
    answers = []
    try:
        for line in lines:
            os.write(master, (line + "\n").encode("utf-8"))
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            assert ready, f"no answer to {line!r} while the terminal stays open"
            answers.append(process.stdout.readline().decode("utf-8").removesuffix("\n"))
        os.write(master, b"\x04")  # Ctrl-D at the start of a line: end of input
        assert process.wait(timeout) == 0, process.stderr.read().decode("utf-8", "replace")
    finally:
        process.kill()
        os.close(master)
    return answers


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, one line on stderr containing every fragment, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="session")
def shakespeare_slice(tmp_path_factory) -> Path:
    """The first 30,000 characters of tiny shakespeare, in a folder of its own."""
    source = require_data("tinyshakespeare/input.txt")
    folder = tmp_path_factory.mktemp("shakespeare")
    (folder / "input.txt").write_text(source.read_text(encoding="utf-8")[:30000], encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def sst_slice(tmp_path_factory) -> Path:
    """The first 300 training and 40 dev trees of SST, in a folder of their own."""
    folder = tmp_path_factory.mktemp("sst")
    for split, count in (("train", 300), ("dev", 40)):
        lines = require_data(f"sst/{split}.txt").read_text(encoding="utf-8").splitlines()
        (folder / f"{split}.txt").write_text("\n".join(lines[:count]) + "\n", encoding="utf-8")
    return folder


TINY_LM = ["--set", "model.hidden_size=32", "--set", "model.embedding_dim=16", "--set", "model.num_layers=1",
           "--set", "train.batch_size=8", "--set", "train.bptt=32", "--set", "train.max_steps=30",
           "--set", "train.eval_every=15", "--set", "train.eval_streams=4", "--set", "train.precision=fp32",
           "--set", "train.max_time=0"]


@pytest.fixture(scope="session")
def tiny_lm_run(tmp_path_factory, shakespeare_slice) -> Path:
    """A character LM trained for a few steps through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"),
                     "--data-dir", str(shakespeare_slice), "--out", str(out), *TINY_LM)
    assert result.returncode == 0, result.stderr + result.stdout
    return out


def overfit(model, batch, *, steps: int, lr: float) -> tuple[float, float]:
    """Train `model` on one batch with Adam; (loss before, loss after in eval mode)."""
    import torch

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    first = model.loss(batch).loss.item()
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss(batch).loss.backward()
        optimizer.step()
    return first, model.eval().loss(batch).loss.item()
