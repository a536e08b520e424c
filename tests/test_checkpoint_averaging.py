"""`lstmnlp average`: a new run whose weights are the mean of a run's kept checkpoints."""

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, TINY_LM, assert_user_error, run_cli
from lstmnlp.checkpoint_averaging import average_weights
from lstmnlp.errors import UserError


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory, shakespeare_slice):
    """A tied-weights char LM that kept its last three checkpoints."""
    out = tmp_path_factory.mktemp("average") / "lm"
    result = run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--data-dir", str(shakespeare_slice),
                     "--out", str(out), *TINY_LM, "--set", "model.embedding_dim=32", "--set", "model.tie_weights=true",
                     "--set", "train.eval_every=5", "--set", "train.keep_last=3")
    assert result.returncode == 0, result.stderr
    return out


def _digests(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*") if path.is_file()}


def test_average_of_the_last_checkpoints_is_a_working_run(kept_run, shakespeare_slice, tmp_path):
    before = _digests(kept_run)
    out = tmp_path / "averaged"
    result = run_cli("average", str(kept_run), "--last", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert _digests(kept_run) == before  # the original run is only read
    kept = sorted((kept_run / "checkpoints").glob("step-*.safetensors"))
    assert [path.name for path in kept] == ["step-0000020.safetensors", "step-0000025.safetensors",
                                            "step-0000030.safetensors"]
    first, second, averaged = load_file(kept[1]), load_file(kept[2]), load_file(out / "model.safetensors")
    assert averaged.keys() == first.keys()
    for name in averaged:
        torch.testing.assert_close(averaged[name], (first[name] + second[name]) / 2)
    assert any(not torch.equal(averaged[name], second[name]) for name in averaged)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["averaged_checkpoints"] == ["step-0000025.safetensors", "step-0000030.safetensors"]
    assert not (out / "trainer_state.pt").exists() and not (out / "checkpoints").exists()
    scored = run_cli("score", str(out), "--input", str(shakespeare_slice / "input.txt"), "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["tokens"] > 1000


def test_default_out_takes_every_kept_checkpoint(kept_run):
    result = run_cli("average", str(kept_run))
    assert result.returncode == 0, result.stderr
    out = kept_run.parent / "lm-avg3"
    assert json.loads((out / "meta.json").read_text())["averaged_checkpoints"][0] == "step-0000020.safetensors"
    assert_user_error(run_cli("average", str(kept_run)), "already exists")  # never overwritten


def test_refusals(kept_run, tiny_lm_run, tmp_path):
    assert_user_error(run_cli("average", str(tiny_lm_run)), "train.keep_last")  # kept none
    assert_user_error(run_cli("average", str(kept_run), "--last", "1"), "--last")
    assert_user_error(run_cli("average", str(tmp_path / "missing")), "not found")
    assert_user_error(run_cli("average", str(kept_run), "--out", str(tmp_path / "no" / "such")), "not found")


def test_checkpoints_of_other_models_are_refused(kept_run, tiny_lm_run, tmp_path):
    other = tmp_path / "other.safetensors"
    other.write_bytes((tiny_lm_run / "model.safetensors").read_bytes())
    with pytest.raises(UserError, match="other tensors"):
        average_weights([kept_run / "model.safetensors", other])
