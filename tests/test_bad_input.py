"""The rest of the bad-input matrix (the foundation tests cover missing, directory, empty, binary,
non-UTF-8, unequal parallel files, unknown keys, bad values, truncated weights): extreme lines,
foreign checkpoints and tokenizers, token-bounded batches, and fuzzed loaders."""

import shutil

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, assert_user_error, require_data, run_cli
from lstmnlp.batching import bucket_batches
from lstmnlp.data import read_lines, read_sst
from lstmnlp.errors import UserError


def test_batches_bounded_by_tokens():
    lengths = [5] * 40 + [500]
    batches = bucket_batches(lengths, 16, max_tokens=60)
    assert sorted(i for batch in batches for i in batch) == list(range(41))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 60
    assert [40] in batches  # the extreme example alone
    pairs = [(3, 4)] * 10
    assert all(len(batch) * 7 <= 21 for batch in bucket_batches(pairs, 8, max_tokens=21))


def test_line_far_longer_than_max_length(tmp_path):
    """A 100x over-long line: skipped (translation training) or cut (translate), never a crash."""
    folder = tmp_path / "data"
    folder.mkdir()
    for split, count in (("train", 200), ("val", 10)):
        for language in ("de", "en"):
            lines = require_data(f"multi30k/{split}.{language}").read_text(encoding="utf-8").splitlines()[:count]
            if split == "train":
                lines[7] = " ".join([lines[7]] * 1000)  # ~10,000 words
            (folder / f"{split}.{language}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    result = run_cli("train", str(ROOT / "recipes" / "multi30k-de-en.yaml"), "--data-dir", str(folder), "--out", str(out),
                     "--set", "model.embedding_dim=8", "--set", "model.hidden_size=8", "--set", "model.num_layers=1",
                     "--set", "model.decoder_hidden_size=16", "--set", "tokenizer.vocab_size=300",
                     "--set", "train.max_steps=4", "--set", "train.eval_every=4", "--set", "train.max_time=0",
                     "--set", "train.batch_size=16", "--set", "train.max_tokens=400")
    assert result.returncode == 0, result.stderr
    assert "pairs longer than 80 pieces" in result.stdout.replace("\n", " ")  # the recipe's data.max_length
    long_line = "Ein Mann fährt Fahrrad. " * 300
    translated = run_cli("translate", str(out), "--beam-size", "2", stdin=f"Hallo.\n{long_line}\n")
    assert translated.returncode == 0, translated.stderr
    assert len(translated.stdout.split("\n")) == 3 and "cut to that length (first: line 2)" in translated.stderr


def test_foreign_tokenizer_and_other_task(tiny_lm_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_lm_run, run)
    german = require_data("multi30k/test2016.de")
    assert run_cli("tokenize", "train", str(german), "--prefix", str(tmp_path / "other"), "--vocab-size", "500",
                   "--model-type", "bpe").returncode == 0
    shutil.copyfile(tmp_path / "other.model", run / "tokenizer.model")
    assert_user_error(run_cli("generate", str(run), "--max-tokens", "3"), "does not belong to this run")
    assert_user_error(run_cli("translate", str(tiny_lm_run), stdin="x\n"), "task 'lm'")
    assert_user_error(run_cli("evaluate", str(tiny_lm_run), "--input", str(german), "--ref", str(german)), "task 'lm'")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_fuzzed_text_files_read_or_refuse(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "f.txt"
    path.write_text(text, encoding="utf-8")
    try:
        lines = read_lines(path)
    except UserError as error:  # only blank or NUL-holding files are refused, with a reason
        assert not text.encode().strip() or "\x00" in text, error
        return
    expected = text.split("\n")
    if expected[-1] == "":
        expected.pop()
    assert lines == [line.rstrip("\r") for line in expected]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="()0123456789 ab-LRB", max_size=80))
def test_fuzzed_sst_trees_parse_or_name_the_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "trees.txt"
    path.write_text("(3 (2 fine) (3 good))\n" + text + "\n", encoding="utf-8")
    try:
        data = read_sst(path, label_names={i: str(i) for i in range(10)})
    except UserError as error:
        assert f"{path}:2:" in str(error)
        return
    assert data.texts[0] == "fine good"


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from lstmnlp.checkpoint import atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "x\n")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left behind


def test_unwritable_place_is_a_user_error(tmp_path):
    """No traceback where the output cannot be written, and nothing there is touched."""
    from lstmnlp.checkpoint import atomic_write, atomic_write_text
    from lstmnlp.errors import UserError

    (tmp_path / "plain").write_text("kept\n", encoding="utf-8")
    with pytest.raises(UserError, match="cannot write"):
        atomic_write_text(tmp_path / "plain" / "out.txt", "x\n")  # its "directory" is a file

    def failing(temporary):
        raise OSError(28, "No space left on device")

    (tmp_path / "out.txt").write_text("finished\n", encoding="utf-8")
    with pytest.raises(UserError, match="No space left"):
        atomic_write(tmp_path / "out.txt", failing)
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "finished\n"  # the old file stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "plain"]  # no temporary left


def test_huge_line_reads_and_tokenizes(tmp_path, tiny_lm_run):
    from lstmnlp.tokenizer import Tokenizer

    line = "To be, or not to be: " * 200_000  # a 4.2 MB line
    (tmp_path / "huge.txt").write_text(line + "\nshort\n", encoding="utf-8")
    lines = read_lines(tmp_path / "huge.txt")
    assert len(lines) == 2 and lines[0] == line
    tokenizer = Tokenizer(tiny_lm_run / "tokenizer.model")
    assert tokenizer.decode(tokenizer.encode(lines[0][:100_000])) == lines[0][:100_000]
