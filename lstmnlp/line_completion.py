"""Complete many one-line prompts at once: `lstmnlp generate --input FILE`.

Each prompt is the start of a line (a backward model: its end); the model writes the rest of
that line, up to the line break it writes or `max_tokens`. Rows are primed in groups of equal
prompt length, so every row's state is exactly what the prompt alone would give, then all rows
of a batch are sampled (or beam-searched) together by the shared search module.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lstmnlp.language_modeling import cpu_step, prime_ids, prompt_line, with_prompt
from lstmnlp.lm_data import text_beside
from lstmnlp.search import beam_search, make_generator, sample
from lstmnlp.tokenizer import Tokenizer


@torch.inference_mode()
def complete_lines(model, tokenizer: Tokenizer, prompts: Sequence[str], *, max_tokens: int,
                   temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                   beam_size: int = 1, num_samples: int = 1, no_repeat_ngram_size: int = 0,
                   backward: bool = False, batch_size: int = 64) -> list[list[str]]:
    """For each prompt, in input order, `num_samples` lines: the prompt and the rest of its line.

    Sampling (temperature 0 is greedy) draws `num_samples` texts a prompt; beam search
    (`beam_size` > 1) gives the `num_samples` likeliest, ranked as translations are (GNMT length
    penalty 1). `seed` makes the whole output repeatable for the same prompts and options."""
    if any("\n" in prompt for prompt in prompts):
        raise ValueError("complete_lines: a prompt must be one line")
    generator = make_generator(seed)
    eos = tokenizer.eos_id
    encoded = [ids[::-1] if backward else ids for ids in tokenizer.encode_batch(list(prompts))]
    copies = 1 if beam_size > 1 else num_samples  # beam search gives its n-best from one row
    rows = [prompt for prompt in range(len(prompts)) for _ in range(copies)]
    rows.sort(key=lambda row: len(encoded[row]))  # stable: a prompt's samples stay in order
    completed: list[list[str]] = [[] for _ in prompts]
    for first in range(0, len(rows), batch_size):
        batch = rows[first:first + batch_size]
        start, state = _prime_rows(model, [[eos] + encoded[row] for row in batch])
        if beam_size > 1:
            found = beam_search(model.step, state, start, beam_size=beam_size, max_lengths=max_tokens,
                                eos_id=eos, alpha=1.0, nbest=num_samples,
                                no_repeat_ngram_size=no_repeat_ngram_size)
            texts = [[hypothesis.tokens for hypothesis in hypotheses] for hypotheses in found]
        else:
            drawn = sample(cpu_step(model), state, start.cpu(), max_tokens=max_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p, eos_id=eos, generator=generator,
                           no_repeat_ngram_size=no_repeat_ngram_size).tolist()
            texts = [[_before(ids, eos)] for ids in drawn]
        for row, row_texts in zip(batch, texts):
            context = prompt_line(tokenizer, prompts[row], backward=backward)
            completed[row].extend(with_prompt(prompts[row], text_beside(tokenizer, context, ids, backward=backward),
                                              backward=backward) for ids in row_texts)
    return completed


def _prime_rows(model, sequences: list[list[int]]):
    """(last ids (B,), state) after reading each sequence but its last id; equal lengths are read
    together, and the states joined in the rows' order."""
    by_length: dict[int, list[int]] = {}
    for row, ids in enumerate(sequences):
        by_length.setdefault(len(ids), []).append(row)
    order, starts, states = [], [], []
    for rows in by_length.values():
        start, state = prime_ids(model, torch.tensor([sequences[row] for row in rows]))
        order.extend(rows)
        starts.append(start)
        states.append(state)
    back = torch.tensor(order).argsort()  # each row's position among the joined rows
    joined = type(states[0]).concat(states) if len(states) > 1 else states[0]
    return torch.cat(starts)[back.to(starts[0].device)], joined.select(back.to(starts[0].device))


def _before(ids: list[int], eos: int) -> list[int]:
    """The ids before the first `eos` (all of them when there is none)."""
    return ids[:ids.index(eos)] if eos in ids else ids
