"""Sentencepiece wrapper: training with fixed special ids, exact-round-trip encode/decode.

The ids of the special pieces are fixed at training so that every model can rely on them:
pad 0, unk 1, bos 2, eos 3 (sentencepiece turns pad off by default). Normalization is the
identity and whitespace is kept as it is, so decode(encode(line)) == line for every line whose
characters the vocabulary covers.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from lstmnlp.errors import UserError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_TYPES = ("bpe", "unigram", "char", "word")
MAX_LINE_BYTES = 1 << 16  # longer training lines are skipped by sentencepiece; we count them


@dataclass(frozen=True)
class TokenizerReport:
    """What `train_tokenizer` made, for the summary table."""

    model_path: Path
    vocab_size: int
    character_coverage: float  # share of character occurrences that map to a known piece
    mean_pieces_per_line: float
    lines_sampled: int
    seconds: float


class Tokenizer:
    """A trained sentencepiece model with the fixed special ids above."""

    def __init__(self, model_path: Path) -> None:
        import sentencepiece as spm

        path = Path(model_path)
        if not path.is_file():
            raise UserError(f"{path}: tokenizer model not found")
        self.path = path
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.load(str(path))
        except (OSError, RuntimeError):
            raise UserError(f"{path}: not a sentencepiece model") from None
        if (self.processor.pad_id(), self.processor.unk_id()) != (PAD_ID, UNK_ID):
            raise UserError(f"{path}: special ids differ from lstmnlp's (pad 0, unk 1, bos 2, eos 3); "
                            "train it with `lstmnlp tokenize train`")
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    @property
    def is_character_level(self) -> bool:
        """True when every ordinary piece is one character (so tokens are characters)."""
        processor = self.processor
        return all(len(processor.id_to_piece(i)) == 1 for i in range(processor.get_piece_size())
                   if not (processor.is_control(i) or processor.is_unknown(i) or processor.is_byte(i)))

    def encode(self, text: str) -> list[int]:
        """Ids of one line (no bos/eos added)."""
        return self.processor.encode(text)

    def encode_batch(self, lines: Sequence[str], *, sampling_alpha: float = 0.0) -> list[list[int]]:
        """Ids of each line; with `sampling_alpha` > 0 one segmentation per line drawn from the
        model's distribution over segmentations (subword regularization; the BPE-dropout rate for
        bpe models). sentencepiece draws them with its own generator, which no seed makes
        repeatable across processes."""
        if sampling_alpha:
            return self.processor.encode(list(lines), enable_sampling=True, alpha=sampling_alpha, nbest_size=-1)
        return self.processor.encode(list(lines))

    def pieces(self, text: str) -> list[str]:
        return self.processor.encode(text, out_type=str)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of one line; special ids are skipped."""
        return self.processor.decode([int(i) for i in ids if i > EOS_ID])

    def id_to_piece(self, token_id: int) -> str:
        return self.processor.id_to_piece(int(token_id))

    def unknown_characters(self, text: str) -> list[str]:
        """Characters of `text` that the vocabulary cannot spell (they become <unk>)."""
        unknown = []
        for char in sorted(set(text) - {"\n"}):
            if UNK_ID in self.processor.encode(char):
                unknown.append(char)
        return unknown


def train_tokenizer(files: Sequence[Path], prefix: Path, *, vocab_size: int, model_type: str,
                    character_coverage: float = 0.9995, byte_fallback: bool = False,
                    user_defined_symbols: Sequence[str] = (), quiet: bool = True) -> TokenizerReport:
    """Train a sentencepiece model on `files`, writing `prefix.model` and `prefix.vocab`.
    For `char` and `word` models `vocab_size` is an upper bound (every character or word, when
    the text has fewer); for `bpe` and `unigram` it is exact.

    Raises:
        UserError: for a bad option or a sentencepiece failure, in words that say what to do.
    """
    import sentencepiece as spm

    if model_type not in MODEL_TYPES:
        raise UserError(f"--model-type {model_type!r}: must be one of {', '.join(MODEL_TYPES)}")
    if vocab_size < 8:
        raise UserError(f"--vocab-size {vocab_size}: must be at least 8")
    if not 0.0 < character_coverage <= 1.0:
        raise UserError(f"--character-coverage {character_coverage}: must lie in (0, 1]")
    for path in files:
        _check_readable(Path(path))
    prefix = Path(prefix)
    if not prefix.parent.exists():
        raise UserError(f"{prefix.parent}: output directory does not exist")
    started = time.perf_counter()
    options = dict(
        input=",".join(str(f) for f in files), model_prefix=str(prefix), vocab_size=vocab_size,
        model_type=model_type, character_coverage=character_coverage, byte_fallback=byte_fallback,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=model_type != "char", hard_vocab_limit=model_type not in ("char", "word"),
        max_sentence_length=MAX_LINE_BYTES, input_sentence_size=2_000_000,
        shuffle_input_sentence=True, minloglevel=2 if quiet else 0,
    )
    if user_defined_symbols:
        options["user_defined_symbols"] = list(user_defined_symbols)
    try:
        spm.SentencePieceTrainer.train(**options)
    except (RuntimeError, OSError) as error:
        raise UserError(_explain_training_error(str(error), vocab_size)) from None
    seconds = time.perf_counter() - started
    tokenizer = Tokenizer(prefix.with_suffix(".model"))
    coverage, mean_pieces, sampled = _measure(tokenizer, _sample_lines(files, 5000))
    return TokenizerReport(prefix.with_suffix(".model"), tokenizer.vocab_size, coverage,
                           mean_pieces, sampled, seconds)


def _explain_training_error(message: str, vocab_size: int) -> str:
    too_high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", message)
    if too_high:
        return (f"vocabulary size {vocab_size} is too high for this text: "
                f"use --vocab-size {too_high.group(2)} or less, or train on more text")
    if "Vocabulary size is smaller than required_chars" in message:
        return (f"vocabulary size {vocab_size} is smaller than the number of distinct characters: "
                "raise --vocab-size or lower --character-coverage")
    if "No valid sentences" in message or "Sentences are empty" in message:
        return "no usable training lines: the input files are empty or every line is too long"
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return f"sentencepiece training failed: {first.split('] ')[-1]}"


def _check_readable(path: Path) -> None:
    from lstmnlp.data import check_text_file

    check_text_file(path)


def _sample_lines(files: Sequence[Path], limit: int) -> list[str]:
    lines: list[str] = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                lines.append(line.rstrip("\n"))
                if len(lines) >= limit:
                    return lines
    return lines


def _measure(tokenizer: Tokenizer, lines: Iterable[str]) -> tuple[float, float, int]:
    """(share of characters not mapped to <unk>, mean pieces per line, lines seen)."""
    lines = [line for line in lines if line]
    if not lines:
        return 1.0, 0.0, 0
    pieces = tokenizer.encode_batch(lines)
    total_chars = sum(len(line) for line in lines)
    unknown_chars = 0
    for line, ids in zip(lines, pieces):
        if UNK_ID in ids:
            unknown_chars += sum(len(c) for c in line if UNK_ID in tokenizer.encode(c))
    coverage = 1.0 - unknown_chars / max(total_chars, 1)
    return coverage, sum(len(p) for p in pieces) / len(lines), len(lines)
