"""Two CPU processes under torchrun (gloo) step like one process with the doubled batch."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, TINY_LM, assert_user_error, run_cli

SAME_WORK = [*TINY_LM, "--set", "model.dropout=0", "--set", "train.max_steps=8", "--set", "train.eval_every=4",
             "--set", "train.log_every=2", "--set", "train.threads=1", "--set", "train.clip_norm=0"]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_two_ranks_match_one_process_with_double_batch(shakespeare_slice, tmp_path, accumulate):
    """With train.accumulate 2 as well: each rank's gradients stay local until the group's last batch."""
    recipe = str(ROOT / "recipes" / "char-lm-shakespeare.yaml")
    work = [*SAME_WORK, "--set", f"train.accumulate={accumulate}"]
    single = run_cli("train", recipe, "--data-dir", str(shakespeare_slice), "--out", str(tmp_path / "one"),
                     *work, "--set", "train.batch_size=8")
    assert single.returncode == 0, single.stderr
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", COLUMNS="200")  # as run_cli: no wrapping
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "lstmnlp", "train", recipe, "--data-dir", str(shakespeare_slice),
                          "--out", str(tmp_path / "two"), *work, "--set", "train.batch_size=4"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "(2 processes)" in two.stdout and two.stdout.count("training summary") == 1  # rank 0 alone prints
    one_weights, two_weights = load_file(tmp_path / "one" / "last.safetensors"), load_file(tmp_path / "two" / "last.safetensors")
    for name in one_weights:
        # Same data, same mean gradient; only the order of float sums differs.
        torch.testing.assert_close(two_weights[name], one_weights[name], atol=2e-5, rtol=1e-4)
    records = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "train"] == [2, 4, 6, 8]  # written once, by rank 0
    one_valid = [json.loads(line)["valid_loss"] for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
                 if '"valid"' in line]
    two_valid = [r["valid_loss"] for r in records if r["event"] == "valid"]
    assert two_valid == pytest.approx(one_valid, abs=1e-4)


def test_nproc_launches_ranks(shakespeare_slice, tmp_path):
    env_threads = ["--threads", "1"]
    result = run_cli(*env_threads, "train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--data-dir",
                     str(shakespeare_slice), "--out", str(tmp_path / "run"), *SAME_WORK, "--set", "train.batch_size=4",
                     "--nproc", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(2 processes)" in result.stdout and result.stdout.count("training summary") == 1
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["step"] == 8


@pytest.mark.parametrize("extra, fragment", [
    (["--set", "train.ensemble=3"], "train.ensemble"),
    (["--set", "train.ensemble=1", "--set", "tokenizer.sampling_alpha=0.2"], "tokenizer.sampling_alpha"),
    (["--set", "train.ensemble=1", "--cv", "3"], "--cv"),
])
def test_single_process_options_refused_before_ranks_start(extra, fragment):
    """One line from the launcher, not a failure report from every rank."""
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--nproc", "2", *extra), fragment)
