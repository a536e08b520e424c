from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from lstmnlp.errors import UserError
from lstmnlp.tokenizer import PAD_ID, Tokenizer, train_tokenizer

from conftest import assert_user_error, require_data, run_cli


@pytest.fixture(scope="module")
def german() -> Path:
    return require_data("multi30k/test2016.de")


@pytest.mark.parametrize("model_type, vocab_size", [("bpe", 1000), ("unigram", 1000), ("char", 200)])
def test_round_trip_exact_on_real_text(tmp_path, german, model_type, vocab_size):
    report = train_tokenizer([german], tmp_path / "sp", vocab_size=vocab_size, model_type=model_type,
                             character_coverage=1.0)
    tokenizer = Tokenizer(report.model_path)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert tokenizer.processor.id_to_piece(PAD_ID) == "<pad>"
    lines = german.read_text(encoding="utf-8").splitlines()
    for line in lines:
        assert tokenizer.decode(tokenizer.encode(line)) == line
    assert report.character_coverage == 1.0
    assert report.mean_pieces_per_line > 1


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sampled_segmentations_spell_the_text_and_vary(tmp_path, german, model_type):
    tokenizer = Tokenizer(train_tokenizer([german], tmp_path / "sp", vocab_size=1000, model_type=model_type,
                                          character_coverage=1.0).model_path)
    lines = german.read_text(encoding="utf-8").splitlines()[:200]
    first, second = tokenizer.encode_batch(lines, sampling_alpha=0.3), tokenizer.encode_batch(lines, sampling_alpha=0.3)
    assert first != second and first != tokenizer.encode_batch(lines)
    assert [tokenizer.decode(ids) for ids in first] == lines == [tokenizer.decode(ids) for ids in second]


def test_whitespace_is_kept(tmp_path, german):
    tokenizer = Tokenizer(train_tokenizer([german], tmp_path / "sp", vocab_size=500, model_type="bpe",
                                          character_coverage=1.0).model_path)
    for line in ["  zwei  Leerzeichen ", "Ende. ", " Anfang"]:
        assert tokenizer.decode(tokenizer.encode(line)) == line


def test_a_word_vocabulary_larger_than_the_text_keeps_every_word(tmp_path, german):
    counts = Counter(word for line in german.read_text(encoding="utf-8").splitlines() for word in line.split())
    tokenizer = Tokenizer(train_tokenizer([german], tmp_path / "sp", vocab_size=100000, model_type="word").model_path)
    assert 0.98 * len(counts) < tokenizer.vocab_size < 100000  # an upper bound for words, as for characters
    assert tokenizer.pieces("Ein Mann fährt Fahrrad.") == ["▁Ein", "▁Mann", "▁fährt", "▁Fahrrad."]
    assert tokenizer.unk_id not in tokenizer.encode(" ".join(word for word, _ in counts.most_common(500)))


def test_vocabulary_too_high_is_one_clear_sentence(tmp_path, german):
    with pytest.raises(UserError) as error:
        train_tokenizer([german], tmp_path / "sp", vocab_size=100000, model_type="bpe")
    message = str(error.value)
    assert "too high" in message and "--vocab-size" in message and "\n" not in message


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=200))
def test_char_tokenizer_never_crashes_and_round_trips_known_text(char_tokenizer, text):
    ids = char_tokenizer.encode(text)
    assert all(0 <= i < char_tokenizer.vocab_size for i in ids)
    if not char_tokenizer.unknown_characters(text):
        assert char_tokenizer.decode(ids) == text


@pytest.fixture(scope="module")
def char_tokenizer(tmp_path_factory, german) -> Tokenizer:
    folder = tmp_path_factory.mktemp("char")
    return Tokenizer(train_tokenizer([german], folder / "sp", vocab_size=300, model_type="char",
                                     character_coverage=1.0).model_path)


def test_cli_train_encode_decode_round_trip(tmp_path, german):
    result = run_cli("tokenize", "train", str(german), "--prefix", str(tmp_path / "de"), "--vocab-size", "800",
                     "--model-type", "unigram", "--character-coverage", "1.0")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "de.model").is_file() and (tmp_path / "de.vocab").is_file()
    assert "vocabulary size" in result.stdout and "mean pieces per line" in result.stdout
    lines = german.read_text(encoding="utf-8")
    for ids in ([], ["--ids"]):
        encoded = run_cli("tokenize", "encode", "--model", str(tmp_path / "de.model"), *ids, stdin=lines)
        assert encoded.returncode == 0, encoded.stderr
        assert encoded.stdout.count("\n") == lines.count("\n")
        decoded = run_cli("tokenize", "decode", "--model", str(tmp_path / "de.model"), stdin=encoded.stdout)
        assert decoded.stdout == lines


def test_cli_encode_files_and_empty_line(tmp_path, german):
    run_cli("tokenize", "train", str(german), "--prefix", str(tmp_path / "de"), "--vocab-size", "500",
            "--model-type", "bpe")
    (tmp_path / "in.txt").write_text("Ein Hund.\n\nZwei Katzen.\n", encoding="utf-8")
    result = run_cli("tokenize", "encode", "--model", str(tmp_path / "de.model"), "--ids",
                     "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.txt"))
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "out.txt").read_text().split("\n")
    assert len(rows) == 4 and rows[1] == "" and rows[3] == ""


def test_cli_tokenize_errors(tmp_path, german):
    assert_user_error(run_cli("tokenize", "train", str(tmp_path / "nope.txt"), "--prefix", str(tmp_path / "x")),
                      "nope.txt", "not found")
    assert_user_error(run_cli("tokenize", "train", str(german), "--prefix", str(tmp_path / "x"),
                              "--vocab-size", "900000", "--model-type", "bpe"), "too high")
    assert_user_error(run_cli("tokenize", "encode", "--model", str(tmp_path / "missing.model"), stdin="a\n"),
                      "missing.model")
    assert_user_error(run_cli("tokenize", "train", str(german), "--prefix", str(tmp_path / "no" / "dir" / "x")),
                      "does not exist")
