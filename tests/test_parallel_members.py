"""train.parallel_members through the CLI: a classifier ensemble's members train at once, one
process each; a signal stops them all with their checkpoints written, and --resume goes on."""

import json
import signal

import torch
import yaml

from conftest import ROOT, run_cli
from test_cli_classifier import TINY_CLS
from test_resume import start, wait_for_checkpoint

MEMBERS = ["member-1", "member-2"]


def test_members_train_at_once_stop_on_a_signal_and_resume(sst_slice, tmp_path):
    out = tmp_path / "parallel"
    process = start(["train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--out", str(out),
                     "--set", "data.phrases=false", *TINY_CLS, "--set", "train.ensemble=2",
                     "--set", "train.parallel_members=true", "--set", "train.max_steps=100000"])
    for name in MEMBERS:  # both running at once: each has validated before either is stopped
        wait_for_checkpoint(out / name, 20, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "at once" in stdout and "--resume" in stderr and "Traceback" not in stderr
    assert not (out / "ensemble.json").is_file()  # no member finished
    steps = [torch.load(out / name / "trainer_state.pt", weights_only=True)["step"] for name in MEMBERS]
    configs = [yaml.safe_load((out / name / "config.yaml").read_text())["train"] for name in MEMBERS]
    assert configs[1]["seed"] == configs[0]["seed"] + 1 and configs[0]["threads"] >= 1
    assert all("valid_accuracy" in (out / name / "train.log").read_text() for name in MEMBERS)

    resumed = run_cli("train", "--out", str(out), "--resume", "--set", f"train.max_steps={max(steps) + 10}")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "(resuming)" in resumed.stdout and "ensemble of 2" in resumed.stdout
    listing = json.loads((out / "ensemble.json").read_text())
    assert listing["members"] == MEMBERS and "valid_accuracy" in listing["valid"]
    assert [json.loads((out / name / "meta.json").read_text())["step"] for name in MEMBERS] == [max(steps) + 10] * 2
    labeled = run_cli("classify", str(out), stdin="a gorgeous , witty film\nthe plot is a mess\n")
    assert labeled.returncode == 0 and len(labeled.stdout.splitlines()) == 2, labeled.stderr
