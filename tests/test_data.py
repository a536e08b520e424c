import json

import pytest

from lstmnlp.data import (load_hub_text, parse_sst_tree, read_label_files, read_labeled, read_lines, read_parallel,
                          read_sst, read_text)
from lstmnlp.errors import UserError

from conftest import require_data


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="nope.txt: file not found"):
        read_text(tmp_path / "nope.txt")


def test_directory(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        read_text(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(UserError, match="e.txt: file is empty"):
        read_text(tmp_path / "e.txt")


def test_non_utf8_names_line(tmp_path):
    (tmp_path / "l.txt").write_bytes("gut\nschön\n".encode("utf-8") + b"caf\xe9\n")
    with pytest.raises(UserError, match=r"l.txt:3: not valid UTF-8"):
        read_text(tmp_path / "l.txt")


def test_binary_file(tmp_path):
    (tmp_path / "b.bin").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(UserError, match="binary"):
        read_text(tmp_path / "b.bin")


def test_parallel_counts_must_match(tmp_path):
    (tmp_path / "a.de").write_text("eins\nzwei\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("one\n", encoding="utf-8")
    with pytest.raises(UserError, match="a.de has 2 lines but .*a.en has 1"):
        read_parallel(tmp_path / "a.de", tmp_path / "a.en")


def test_lines_split_on_newline_only(tmp_path):
    (tmp_path / "t.txt").write_text("a\u2028b\nc\r\n", encoding="utf-8")
    assert read_lines(tmp_path / "t.txt") == ["a\u2028b", "c"]
    (tmp_path / "bom.txt").write_bytes("\ufeffein Mann\r\nzwei\r\n".encode("utf-8"))  # as Notepad saves it
    assert read_lines(tmp_path / "bom.txt") == ["ein Mann", "zwei"]


def test_real_parallel_multi30k():
    source, target = read_parallel(require_data("multi30k/val.de"), require_data("multi30k/val.en"))
    assert len(source) == len(target) == 1014


def test_labeled_tsv_and_jsonl_count_skips(tmp_path):
    (tmp_path / "d.tsv").write_text("text\tlabel\ngood film\tpos\n\tneg\nbad film\tneg\n", encoding="utf-8")
    data = read_labeled(tmp_path / "d.tsv")
    assert data.texts == ["good film", "bad film"] and data.labels == ["pos", "neg"]
    assert data.report.skipped == {"rows with an empty text or label": 1}
    rows = [{"text": "fine", "label": 1}, {"text": "poor", "label": 0}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_labeled(tmp_path / "d.jsonl").labels == ["1", "0"]


def test_labeled_missing_column(tmp_path):
    (tmp_path / "d.csv").write_text("sentence,label\nok,1\n", encoding="utf-8")
    with pytest.raises(UserError, match="no column 'text'"):
        read_labeled(tmp_path / "d.csv")


def test_sst_tree_phrases_and_brackets():
    phrases = parse_sst_tree("(3 (2 -LRB-) (4 (2 very) (4 good)))")
    assert phrases[0] == (3, "( very good")
    assert (4, "very good") in phrases and (2, "(") in phrases and len(phrases) == 5


def test_real_sst_binary_drops_neutral():
    path = require_data("sst/dev.txt")
    data = read_sst(path, label_names={0: "negative", 1: "negative", 3: "positive", 4: "positive"})
    assert data.report.examples == len(data.texts) == 872  # the standard SST-2 dev size
    assert data.report.skipped == {"examples with label 2": 1101 - 872}


def test_real_mr_label_files():
    folder = require_data("mr-polarity")
    data = read_label_files({"positive": folder / "rt-polarity.pos", "negative": folder / "rt-polarity.neg"})
    assert data.labels.count("positive") == data.labels.count("negative") == 5331


def test_hub_loader_runs_on_a_local_dataset_folder(tmp_path):
    """The hub code path is the real `datasets.load_dataset(NAME)`; a local folder stands in for a
    hub repository so the test needs no network."""
    (tmp_path / "train.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    (tmp_path / "validation.txt").write_text("held out\n", encoding="utf-8")
    assert load_hub_text(f"hub:{tmp_path}", split="train", column="text") == ["first line", "second line"]
    assert load_hub_text(f"hub:{tmp_path}", split="validation", column="text") == ["held out"]
    with pytest.raises(UserError, match="no column 'sentence'"):
        load_hub_text(f"hub:{tmp_path}", split="train", column="sentence")
    with pytest.raises(UserError, match="cannot load split 'test'"):
        load_hub_text(f"hub:{tmp_path}", split="test", column="text")
