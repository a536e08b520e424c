"""Pretrained word vectors as the start of an embedding table: the encoder's (`model.word_vectors`)
or a translation decoder's (`model.target_word_vectors`); and an embedding written as such a file.

Reads the text formats that GloVe, word2vec (`-binary 0`) and fastText (`.vec`) write: one word
and its numbers per line, separated by spaces, with or without word2vec's "COUNT DIMENSION"
header line; `.gz` files are read as they are. Each vocabulary piece that begins a word
(sentencepiece's "▁"), such as every piece of a `word` tokenizer and the whole-word pieces of
`bpe` and `unigram` ones, starts from the vector of that word, or of the word lower-cased when
the file has no entry for it as written. Pieces inside words never match. Rows left without a
vector keep their random start, rescaled to the spread of the rows that found one, so the two
kinds enter the LSTM on the same scale (Kim 2014 draws unknown words to match the pretrained
variance); the padding row stays zero.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

import torch
from torch import nn

from lstmnlp.errors import UserError
from lstmnlp.tokenizer import Tokenizer

WORD_START = "\u2581"  # sentencepiece's mark of a piece that begins a word


@dataclass(frozen=True)
class VectorReport:
    """How much of a vocabulary the vectors covered."""

    found: int  # rows filled from the file
    words: int  # pieces that begin a word (the rows that could be filled)
    vocabulary: int
    dimension: int

    def summary(self, path: Path) -> str:
        share = 100.0 * self.found / max(self.words, 1)
        return (f"word vectors: {self.found:,} of {self.words:,} whole-word pieces found in {path.name} "
                f"({share:.1f} %; {self.vocabulary:,} pieces in all), {self.dimension} dimensions")


def candidate_words(tokenizer: Tokenizer) -> dict[int, tuple[str, ...]]:
    """Piece id -> the words to look up for it, best first (as written, then lower-cased)."""
    candidates = {}
    for piece_id in range(tokenizer.vocab_size):
        piece = tokenizer.id_to_piece(piece_id)
        word = piece[1:] if piece.startswith(WORD_START) else ""
        if word:
            candidates[piece_id] = tuple(dict.fromkeys((word, word.lower())))
    return candidates


def read_vectors(path: Path, wanted: set[str], key: str = "model.word_vectors") -> tuple[dict[str, torch.Tensor], int]:
    """The vectors of the `wanted` words in a text vector file, and the file's dimension.

    Raises:
        UserError (naming the recipe's `key`): a missing or unreadable file, or a line that is not
        a word and its numbers.
    """
    if not path.is_file():
        raise UserError(f"{key}: {path}: " + ("is a directory" if path.is_dir() else "no such file"))
    vectors: dict[str, torch.Tensor] = {}
    dimension = 0
    try:
        with _open_text(path) as lines:
            for number, line in enumerate(lines, 1):
                word, _, numbers = line.rstrip().partition(" ")
                if number == 1 and word.isdigit() and numbers.isdigit():
                    continue  # word2vec's header: COUNT DIMENSION
                if not dimension:
                    dimension = len(numbers.split(" ")) if numbers else 0
                    if not dimension:
                        raise UserError(f"{key}: {path}, line {number}: expected a word and its "
                                        "numbers separated by spaces")
                if word in wanted and word not in vectors:  # only these lines are split: files hold millions
                    fields = numbers.split(" ")
                    if len(fields) < dimension:
                        raise UserError(f"{key}: {path}, line {number}: {len(fields)} numbers "
                                        f"where the first vector has {dimension}")
                    if len(fields) == dimension:  # more: the entry's word holds spaces (a few GloVe lines)
                        vectors[word] = _numbers(fields, path, number, key)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError):
        raise UserError(f"{key}: {path}: not a text vector file (GloVe .txt, word2vec text "
                        "(-binary 0) or fastText .vec, optionally .gz)") from None
    except OSError as error:
        raise UserError(f"{key}: {path}: {error.strerror or error}") from None
    if not dimension:
        raise UserError(f"{key}: {path}: holds no vectors")
    return vectors, dimension


@torch.no_grad()
def fill_embedding(embedding: nn.Embedding, tokenizer: Tokenizer, path: Path,
                   key: str = "model.word_vectors") -> VectorReport:
    """Start `embedding`'s rows from the vectors in `path` (see the module's docstring), which
    the recipe's `key` names.

    Raises:
        UserError: a file of another dimension than the embedding's, or none of the vocabulary in it.
    """
    candidates = candidate_words(tokenizer)
    vectors, dimension = read_vectors(path, {word for words in candidates.values() for word in words}, key)
    if dimension != embedding.embedding_dim:
        raise UserError(f"{key}: {path} holds {dimension}-dimensional vectors and "
                        f"model.embedding_dim is {embedding.embedding_dim}; set them equal")
    found = {piece_id: next(vectors[word] for word in words if word in vectors)
             for piece_id, words in candidates.items() if any(word in vectors for word in words)}
    if not found:
        raise UserError(f"{key}: none of the {len(candidates):,} whole-word pieces of the tokenizer is "
                        f"in {path} (word vectors suit word, bpe and unigram tokenizers, of the file's casing)")
    weight = embedding.weight
    rows = torch.tensor(sorted(found), dtype=torch.long)
    weight[rows] = torch.stack([found[int(row)] for row in rows]).to(weight.dtype)
    others = torch.ones(weight.shape[0], dtype=torch.bool)
    others[rows] = False
    if embedding.padding_idx is not None:
        others[embedding.padding_idx] = False
    if others.any():
        spread = weight[rows].std()
        weight[others] *= spread / weight[others].std().clamp(min=1e-12)
    return VectorReport(found=len(found), words=len(candidates), vocabulary=weight.shape[0], dimension=dimension)


def apply_word_vectors(path: str, embedding: nn.Embedding, tokenizer: Tokenizer,
                       log: Callable[[str], None], *, key: str = "model.word_vectors") -> None:
    """`fill_embedding` from the file that recipe `key` names (nothing when it is empty), logged;
    errors name the key."""
    if not path:
        return
    report = fill_embedding(embedding, tokenizer, Path(path), key)
    log(("target " if key == "model.target_word_vectors" else "") + report.summary(Path(path)))


def _open_text(path: Path) -> IO[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8")


def _numbers(fields: list[str], path: Path, number: int, key: str) -> torch.Tensor:
    try:
        return torch.tensor([float(field) for field in fields], dtype=torch.float32)
    except ValueError:
        raise UserError(f"{key}: {path}, line {number}: expected numbers after the word") from None


def embedding_lines(embedding: torch.Tensor, tokenizer: Tokenizer, *, pieces: bool = False) -> list[str]:
    """A (V, E) embedding as word2vec text lines, header first ("COUNT DIMENSION"): each
    whole-word piece under its word, which `fill_embedding` reads back into the same row; with
    `pieces`, every piece as sentencepiece spells it (the padding row aside)."""
    rows: list[tuple[str, int]] = []
    for piece_id in range(tokenizer.vocab_size):
        piece = tokenizer.id_to_piece(piece_id)
        if pieces and piece_id != tokenizer.pad_id:
            rows.append((piece, piece_id))
        elif piece.startswith(WORD_START) and len(piece) > 1:
            rows.append((piece[1:], piece_id))
    values = embedding.detach().float().cpu()
    lines = [f"{len(rows)} {values.shape[1]}"]
    lines.extend(word + " " + " ".join(f"{x:.6g}" for x in values[row].tolist()) for word, row in rows)
    return lines
