"""Pretrained word vectors as the embedding's start: which rows fill, from which entry, and the
errors a user sees for a wrong file."""

import gzip

import pytest
import torch
from torch import nn

from lstmnlp.errors import UserError
from lstmnlp.word_vectors import candidate_words, embedding_lines, fill_embedding

PIECES = ["<pad>", "<unk>", "<s>", "</s>", "\u2581Good", "\u2581film", "ing", "\u2581the", "\u2581unseen", "\u2581"]


class PieceList:
    """Stands in for a Tokenizer: just its pieces."""

    vocab_size = len(PIECES)
    pad_id = 0

    def id_to_piece(self, piece_id: int) -> str:
        return PIECES[piece_id]


def vector(seed: float) -> list[float]:
    return [seed, -seed, 2 * seed]


def write_glove(path, entries: dict[str, list[float]], header: bool = False) -> None:
    lines = ([f"{len(entries)} 3"] if header else []) + [f"{word} {' '.join(map(str, values))}"
                                                       for word, values in entries.items()]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")


# A few GloVe entries hold spaces: "the end" must not be taken for "the".
ENTRIES = {"good": vector(0.2), "the end": vector(5.0), "the": vector(0.1), ". . .": vector(9.0),
           "film": vector(0.3), "ing": vector(0.4)}


def embedding() -> nn.Embedding:
    torch.manual_seed(0)
    return nn.Embedding(len(PIECES), 3, padding_idx=0)


def test_only_pieces_that_begin_a_word_are_looked_up():
    assert candidate_words(PieceList()) == {4: ("Good", "good"), 5: ("film",), 7: ("the",), 8: ("unseen",)}


@pytest.mark.parametrize("name, header", [("vectors.txt", False), ("vectors.vec.gz", True)])
def test_rows_start_from_their_words_vectors(tmp_path, name, header):
    path = tmp_path / name
    write_glove(path, ENTRIES, header=header)
    table = embedding()
    start = table.weight.detach().clone()
    report = fill_embedding(table, PieceList(), path)
    weight = table.weight.detach()
    assert (report.found, report.words, report.dimension) == (3, 4, 3)
    assert weight[4].tolist() == pytest.approx(vector(0.2))  # "Good" is not in the file: "good" is
    assert weight[5].tolist() == pytest.approx(vector(0.3)) and weight[7].tolist() == pytest.approx(vector(0.1))
    assert torch.equal(weight[0], torch.zeros(3))  # padding stays zero
    # "ing" continues a word: it keeps its random start, as does "unseen", rescaled to the vectors' spread.
    others = [1, 2, 3, 6, 8, 9]
    ratio = weight[others] / start[others]
    assert torch.allclose(ratio, ratio[0, 0].expand_as(ratio))
    assert weight[others].std().item() == pytest.approx(weight[[4, 5, 7]].std().item(), rel=1e-4)


def test_an_entry_as_written_wins_over_the_lower_cased_one(tmp_path):
    path = tmp_path / "vectors.txt"
    write_glove(path, {"good": vector(0.2), "Good": vector(0.7)})
    table = embedding()
    fill_embedding(table, PieceList(), path)
    assert table.weight[4].tolist() == pytest.approx(vector(0.7))


@pytest.mark.parametrize("content, fragment", [
    ("the 0.1 0.2\n", "2-dimensional vectors and model.embedding_dim is 3"),
    ("zebra 0.1 0.2 0.3\n", "none of the 4 whole-word pieces"),
    ("the 0.1 0.2 0.3\nfilm 0.3 0.1\n", "line 2: 2 numbers where the first vector has 3"),
    ("the 0.1 zero 0.3\n", "line 1: expected numbers after the word"),
    ("lonely\n", "line 1: expected a word and its numbers"),
    ("", "holds no vectors"),
])
def test_a_wrong_file_is_named_in_one_line(tmp_path, content, fragment):
    path = tmp_path / "vectors.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match="model.word_vectors") as error:
        fill_embedding(embedding(), PieceList(), path)
    assert fragment in str(error.value)


def test_binary_and_missing_files_are_refused(tmp_path):
    binary = tmp_path / "vectors.bin"
    binary.write_bytes(b"2 3\nthe \x00\x80\xff\xfe\x12\x34\x56\x78\x9a\xbc\xde\xf0")
    with pytest.raises(UserError, match="not a text vector file"):
        fill_embedding(embedding(), PieceList(), binary)
    with pytest.raises(UserError, match="no such file"):
        fill_embedding(embedding(), PieceList(), tmp_path / "absent.txt")


def test_written_vectors_read_back_into_the_same_rows(tmp_path):
    table = embedding()
    lines = embedding_lines(table.weight, PieceList())
    assert lines[0] == "4 3" and [line.split()[0] for line in lines[1:]] == ["Good", "film", "the", "unseen"]
    path = tmp_path / "exported.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refilled = nn.Embedding(len(PIECES), 3, padding_idx=0)
    assert fill_embedding(refilled, PieceList(), path).found == 4
    rows = [4, 5, 7, 8]
    assert torch.allclose(refilled.weight[rows], table.weight[rows], atol=1e-5)
    every_piece = embedding_lines(table.weight, PieceList(), pieces=True)
    assert every_piece[0] == "9 3" and every_piece[1].split()[0] == "<unk>" and every_piece[-1].split()[0] == "\u2581"
