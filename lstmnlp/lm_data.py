"""Token streams for language models: text -> ids -> (B, N) parallel streams -> BPTT windows.

    text "ab\ncd"  ->  ids [a b <eos> c d]        (a line break is the <eos> token)

    batchify, B = 2:   stream 0: a b <eos> ...    each row is a contiguous slice of the text;
                       stream 1: ...              windows of `bptt` columns are read left to
                                                  right, the state carried from one to the next
"""

from __future__ import annotations

from typing import Iterator

import torch

from lstmnlp.models.language_model import LanguageModel, LanguageModelBatch
from lstmnlp.tokenizer import Tokenizer


def encode_text(tokenizer: Tokenizer, text: str, *, backward: bool = False) -> torch.Tensor:
    """One id stream for a whole text; each '\\n' becomes <eos>. Returns (N,) int64.
    `backward`: the stream runs from the text's end to its start (a backward LM's reading order)."""
    lines = text.split("\n")
    encoded = tokenizer.encode_batch(lines)
    ids: list[int] = []
    for number, line_ids in enumerate(encoded):
        ids.extend(line_ids)
        if number < len(lines) - 1:
            ids.append(tokenizer.eos_id)
    stream = torch.tensor(ids, dtype=torch.long)
    return stream.flip(0) if backward else stream


def decode_ids(tokenizer: Tokenizer, ids: list[int], *, backward: bool = False) -> str:
    """Inverse of `encode_text`: <eos> back to '\\n'; `backward` ids are in reading order, end first."""
    if backward:
        ids = ids[::-1]
    lines, current = [], []
    for token in ids:
        if token == tokenizer.eos_id:
            lines.append(tokenizer.decode(current))
            current = []
        else:
            current.append(token)
    lines.append(tokenizer.decode(current))
    return "\n".join(lines)


def text_beside(tokenizer: Tokenizer, context: list[int], ids: list[int], *, backward: bool = False) -> str:
    """The text of `ids` as it reads right after the ids `context` (a prompt's last line), or
    right before them (`backward`, where `ids` are in reading order, end first). Decoded together:
    a subword tokenizer writes the space before a word with the word, and decoding the new ids
    alone would drop the one between the prompt and them ("the film" + "is" -> "the filmis")."""
    shown = decode_ids(tokenizer, context)
    if backward:
        whole = decode_ids(tokenizer, ids[::-1] + context)
        return whole[:len(whole) - len(shown)] if whole.endswith(shown) else decode_ids(tokenizer, ids, backward=True)
    whole = decode_ids(tokenizer, context + ids)
    return whole[len(shown):] if whole.startswith(shown) else decode_ids(tokenizer, ids)


class TextStream:
    """`decode_ids` one token at a time, for streaming: `push` returns the text the new token
    adds, `finish` what is left. Lines decode independently, so only the current line is decoded
    again at each token (decoding everything so far made sampling quadratic in its length).
    Trailing replacement characters are held back: they may be the first bytes of a character
    that the next byte-fallback pieces complete. `context`: the ids the text continues on its
    first line (the prompt's last line), decoded with it but never returned (`text_beside`)."""

    def __init__(self, tokenizer: Tokenizer, context: list[int] | None = None) -> None:
        self.tokenizer = tokenizer
        self.line: list[int] = list(context or [])  # ids since the last <eos>
        self.shown = tokenizer.decode(self.line)  # the part of the current line already returned

    def push(self, token: int) -> str:
        if token == self.tokenizer.eos_id:
            rest = self.finish()
            self.line, self.shown = [], ""
            return rest + "\n"
        self.line.append(token)
        return self._new_text(final=False)

    def finish(self) -> str:
        """The rest of the current line, held-back characters included."""
        return self._new_text(final=True)

    def _new_text(self, *, final: bool) -> str:
        text = self.tokenizer.decode(self.line)
        if not final:
            text = text.rstrip("\ufffd")
        if not text.startswith(self.shown):  # cannot happen with sentencepiece's decoding
            return ""
        new, self.shown = text[len(self.shown):], text
        return new


def batchify(stream: torch.Tensor, num_streams: int) -> torch.Tensor:
    """(N,) -> (B, N // B): B contiguous slices side by side; the remainder is dropped."""
    length = stream.numel() // num_streams
    return stream[: length * num_streams].view(num_streams, length)


def windows(streams: torch.Tensor, bptt: int, offset: int = 0) -> Iterator[LanguageModelBatch]:
    """BPTT windows over (B, N) streams, starting at column `offset`."""
    total = streams.size(1) - 1
    for start in range(offset, total, bptt):
        end = min(start + bptt, total)
        yield LanguageModelBatch(streams[:, start:end], streams[:, start + 1:end + 1])


@torch.inference_mode()
def evaluate_stream(model: LanguageModel, stream: torch.Tensor, *, num_streams: int = 1,
                    bptt: int = 512, device: torch.device | None = None) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and token count of predicting `stream` from its start.

    The first token is the context and is not scored; with one stream every other token is.
    """
    was_training = model.training
    model.eval()
    streams = batchify(stream, num_streams)
    if device is not None:
        streams = streams.to(device)
    total, count, carry = 0.0, 0, None
    for batch in windows(streams, bptt):
        output = model.loss(batch, carry)
        total += float(output.total)
        count += int(output.count)
        carry = output.carry
    model.train(was_training)
    return total, count
