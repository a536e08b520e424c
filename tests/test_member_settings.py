"""`members:`: an ensemble member's own settings, from the recipe to the trained run."""

import json
from pathlib import Path

import pytest
import yaml

from lstmnlp.config import load_config
from lstmnlp.ensemble_training import member_config
from lstmnlp.errors import UserError
from lstmnlp.tokenizer import Tokenizer

from conftest import ROOT, assert_user_error, run_cli
from test_cli_classifier import TINY_CLS

WORDS = "members=[{}, {tokenizer.model_type: word, tokenizer.vocab_size: 300, model: {pooling: mean}}]"


def test_each_member_takes_its_own_settings_and_the_rest_the_recipe():
    config = load_config(None, ["task=classify", "train.ensemble=3", WORDS])
    first, second, third = (member_config(config, number, Path("run/member-1")) for number in (1, 2, 3))
    assert (first.tokenizer.model_type, second.tokenizer.model_type, third.tokenizer.model_type) == \
        ("char", "word", "char")
    assert (second.tokenizer.vocab_size, second.model.pooling, first.model.pooling) == (300, "mean", "max")
    assert [member.train.seed for member in (first, second, third)] == [1234, 1235, 1236]
    assert second.tokenizer.path == ""  # its own tokenizer, not member 1's
    assert third.tokenizer.path == "run/member-1/tokenizer.model"  # the recipe's: member 1's, trained once
    assert not second.members and second.train.ensemble == 1


def test_a_member_with_the_recipes_tokenizer_does_not_take_a_changed_first_members():
    config = load_config(None, ["task=classify", "train.ensemble=2", "members=[{tokenizer.vocab_size: 300}]"])
    assert member_config(config, 2, Path("run/member-1")).tokenizer.path == ""


@pytest.mark.parametrize("overrides, fragment", [
    (["task=classify", "train.ensemble=2", "members=[{}, {data.lowercase: false}]"],
     "members[2]: data.lowercase is the same for every member"),
    (["task=classify", "train.ensemble=2", "members=[{train.seed: 9}]"], "members[1]: train.seed is the same"),
    (["task=classify", "train.ensemble=2", "members=[{}, {model.pooling: median}]"], "members[2]: model.pooling"),
    (["task=classify", "train.ensemble=2", "members=[{}, {model.hiden_size: 8}]"],
     "members[2]: model.hiden_size: unknown key; did you mean model.hidden_size"),
    (["train.ensemble=2", "members=[{}, {tokenizer.vocab_size: 300}]"], "share one vocabulary"),
    (["task=classify", "train.ensemble=2", "members=word"], "members: expected a list of mappings"),
])
def test_settings_that_cannot_work_are_refused_naming_the_member(overrides, fragment):
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, overrides)


def test_entries_past_the_ensemble_are_not_used_but_are_checked():
    assert load_config(None, ["task=classify", "members=[{}, {model.pooling: mean}]"]).train.ensemble == 1
    with pytest.raises(UserError, match=r"members\[2\]: model.pooling"):
        load_config(None, ["task=classify", "members=[{}, {model.pooling: median}]"])


def test_a_language_model_member_may_change_its_model():
    config = load_config(None, ["train.ensemble=2", "members=[{}, {model.dropout: 0.3}]"])
    assert member_config(config, 2, Path("m1")).model.dropout == 0.3


def test_members_on_words_and_pieces_through_the_cli(sst_slice, tmp_path):
    out = tmp_path / "mixed"
    trained = run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--out", str(out),
                      "--set", "data.phrases=false", *TINY_CLS, "--set", "train.max_steps=20", "--set",
                      "train.ensemble=2", "--set", "train.parallel_members=false", "--set", WORDS)
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert "member 2's own settings: tokenizer.model_type=word" in trained.stdout
    configs = [yaml.safe_load((out / name / "config.yaml").read_text()) for name in ("member-1", "member-2")]
    assert [c["tokenizer"]["model_type"] for c in configs] == ["bpe", "word"]  # the recipe's pieces, then words
    assert configs[1]["model"]["pooling"] == "mean" and configs[1]["members"] == []
    assert yaml.safe_load((out / "config.yaml").read_text())["members"][1]["tokenizer.model_type"] == "word"
    words = Tokenizer(out / "member-2" / "tokenizer.model")
    assert words.pieces("the plot is a mess") == ["▁the", "▁plot", "▁is", "▁a", "▁mess"]
    assert Tokenizer(out / "member-1" / "tokenizer.model").vocab_size != words.vocab_size
    assert "valid_accuracy" in json.loads((out / "ensemble.json").read_text())["valid"]
    labeled = run_cli("classify", str(out), stdin="a gorgeous , witty film\nthe plot is a mess\n")
    assert labeled.returncode == 0 and len(labeled.stdout.splitlines()) == 2, labeled.stderr
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice),
                              "--set", "members=[{}, {data.phrases: false}]"), "members[2]: data.phrases")
