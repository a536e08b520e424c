"""Fault tolerance through the CLI: kill -9 and resume bitwise, SIGINT/SIGTERM checkpoints,
resume refusals, and checkpoints that must never unpickle."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, TINY_LM, assert_user_error, run_cli

RESUMABLE = [*TINY_LM, "--set", "train.max_steps=300", "--set", "train.eval_every=20", "--set", "train.log_every=5",
             "--set", "train.threads=1"]


def lm_args(data, out, *extra):
    return ["train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--data-dir", str(data), "--out", str(out),
            *RESUMABLE, *extra]


def start(args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "lstmnlp", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)


def wait_for_checkpoint(out, step, process, timeout=120):
    """Wait until the run has written a checkpoint at `step` or later."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()
        metrics = out / "metrics.jsonl"
        if metrics.is_file() and any(json.loads(line).get("event") == "valid" and json.loads(line)["step"] >= step
                                     for line in metrics.read_text().splitlines() if line.endswith("}")):
            time.sleep(0.05)  # the checkpoint follows its log line
            return
        time.sleep(0.02)
    raise AssertionError("no checkpoint in time")


def steps_logged(out):
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return ([r["step"] for r in records if r["event"] == "train"], [r["step"] for r in records if r["event"] == "valid"])


@pytest.mark.parametrize("extra", [[], ["--set", "train.average_decay=0.99"], ["--set", "train.accumulate=3"]],
                         ids=["plain", "averaged", "accumulated"])
def test_killed_run_resumes_to_identical_weights(shakespeare_slice, tmp_path, extra):
    straight = run_cli(*lm_args(shakespeare_slice, tmp_path / "straight", *extra))
    assert straight.returncode == 0, straight.stderr
    process = start(lm_args(shakespeare_slice, tmp_path / "killed", *extra))
    wait_for_checkpoint(tmp_path / "killed", 40, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed_from = torch.load(tmp_path / "killed" / "trainer_state.pt", weights_only=True)["step"]
    assert 40 <= resumed_from < 300
    again = run_cli(*lm_args(shakespeare_slice, tmp_path / "killed", *extra, "--resume"))
    assert again.returncode == 0, again.stderr
    expected, actual = load_file(tmp_path / "straight" / "last.safetensors"), load_file(tmp_path / "killed" / "last.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name  # bitwise
    train_steps, valid_steps = steps_logged(tmp_path / "killed")
    assert train_steps == list(range(5, 301, 5)) and valid_steps == list(range(20, 301, 20))
    assert steps_logged(tmp_path / "straight") == (train_steps, valid_steps)


@pytest.mark.parametrize("sent, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_writes_checkpoint_and_exits(shakespeare_slice, tmp_path, sent, code):
    out = tmp_path / "run"
    process = start(lm_args(shakespeare_slice, out, "--set", "train.max_steps=100000"))
    wait_for_checkpoint(out, 20, process)
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "--resume" in stderr and str(out) in stderr and "Traceback" not in stderr
    state = torch.load(out / "trainer_state.pt", weights_only=True)
    interrupted = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert interrupted["event"] == "interrupted" and interrupted["step"] == state["step"] >= 20
    resumed = run_cli(*lm_args(shakespeare_slice, out, "--resume", "--set", f"train.max_steps={state['step'] + 10}"))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "meta.json").read_text())["step"] == state["step"] + 10


def test_resume_refusals(tiny_lm_run, shakespeare_slice, tmp_path):
    assert_user_error(run_cli(*lm_args(shakespeare_slice, tiny_lm_run)), "already holds a run", "--resume")
    assert_user_error(run_cli(*lm_args(shakespeare_slice, tiny_lm_run, "--resume", "--set", "model.hidden_size=64")),
                      "model.hidden_size", "only train.* may change")
    assert_user_error(run_cli(*lm_args(shakespeare_slice, tmp_path / "none", "--resume")), "nothing to resume")


def test_trainer_state_is_plain_data(tiny_lm_run):
    state = torch.load(tiny_lm_run / "trainer_state.pt", weights_only=True)
    assert {"step", "epoch", "batch", "optimizer", "rng", "carry", "best_value", "bad_validations"} <= set(state)
    meta = json.loads((tiny_lm_run / "meta.json").read_text())
    assert {"torch_version", "sentencepiece_version", "git_commit", "vocab_size"} <= set(meta)


class Payload:
    """Unpickling this would create a file: proof that a checkpoint was executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_never_runs(tiny_lm_run, shakespeare_slice, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_lm_run, run)
    marker = tmp_path / "pwned"
    for name in ("model.safetensors", "trainer_state.pt", "last.safetensors"):
        (run / name).write_bytes(pickle.dumps(Payload(marker)))
    assert_user_error(run_cli("generate", str(run), "--max-tokens", "5"), "model.safetensors")
    assert_user_error(run_cli(*lm_args(shakespeare_slice, run, "--resume")), "trainer_state.pt")
    assert not marker.exists()


def test_truncated_last_checkpoint_is_a_clear_error(tiny_lm_run, shakespeare_slice, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_lm_run, run)
    data = (run / "trainer_state.pt").read_bytes()
    (run / "trainer_state.pt").write_bytes(data[: len(data) // 2])
    assert_user_error(run_cli(*lm_args(shakespeare_slice, run, "--resume")), "trainer_state.pt")
    assert run_cli("generate", str(run), "--max-tokens", "5").returncode == 0  # the best weights still load


def test_keep_last_and_peak_memory(shakespeare_slice, tmp_path):
    out = tmp_path / "run"
    result = run_cli(*lm_args(shakespeare_slice, out, "--set", "train.max_steps=60", "--set", "train.keep_last=2"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000040.safetensors",
                                                                      "step-0000060.safetensors"]
    assert (out / "checkpoints" / "step-0000060.safetensors").read_bytes() == (out / "last.safetensors").read_bytes()
    valid = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"valid"' in line]
    assert all(record["peak_rss_mb"] > 50 for record in valid)
