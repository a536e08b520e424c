"""Language-model runs: read text, train or reuse a tokenizer, train, sample, score.

The library functions behind `lstmnlp train` (task lm), `lstmnlp generate` and `lstmnlp score`.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from lstmnlp import checkpoint
from lstmnlp.config import DataConfig, ExperimentConfig, dump_yaml
from lstmnlp.distributed import World, main_then_others
from lstmnlp.data import load_hub_text, read_text, resolve_data_dir, split_tail
from lstmnlp.errors import UserError
from lstmnlp.metrics import ScoreResult, line_score
from lstmnlp.lm_data import TextStream, batchify, encode_text, evaluate_stream, text_beside, windows
from lstmnlp.models import build_model
from lstmnlp.search import beam_search, make_generator, sample
from lstmnlp.tokenizer import Tokenizer, train_tokenizer
from lstmnlp.train import Reporter, Trainer, TrainResult, fit_run, start_training
from lstmnlp.word_vectors import apply_word_vectors


@dataclass
class LMTrainSummary:
    run_dir: Path
    result: TrainResult
    parameters: int
    train_tokens: int
    valid_tokens: int
    sample: str


def read_corpus(data: DataConfig) -> tuple[str, str, str]:
    """(training text, validation text, where they came from)."""
    folder = resolve_data_dir(data.dir)
    if folder is None and data.hub:
        train = "\n".join(load_hub_text(data.hub, split=data.hub_train_split, column=data.hub_text_column))
        valid = "\n".join(load_hub_text(data.hub, split=data.hub_valid_split, column=data.hub_text_column))
        return train, valid, data.hub
    if folder is None:
        raise UserError("no data: pass --data-dir DIR (or set data.dir / data.hub in the recipe)")
    train_text = read_text(folder / data.train)
    if data.valid:
        return train_text, read_text(folder / data.valid), str(folder)
    head, tail = split_tail(train_text, data.valid_fraction)
    return head, tail, str(folder)


def prepare_tokenizer(config: ExperimentConfig, train_text: str, run_dir: Path) -> Tokenizer:
    """Copy the configured tokenizer into the run, or train one on the training text."""
    target = run_dir / checkpoint.TOKENIZER
    if config.tokenizer.path:
        source = Path(config.tokenizer.path)
        Tokenizer(source)  # checks it
        shutil.copyfile(source, target)
        return Tokenizer(target)
    with tempfile.TemporaryDirectory() as folder:
        text_file = Path(folder) / "train.txt"
        text_file.write_text(train_text, encoding="utf-8")
        train_tokenizer([text_file], run_dir / "tokenizer", vocab_size=config.tokenizer.vocab_size,
                        model_type=config.tokenizer.model_type,
                        character_coverage=config.tokenizer.character_coverage,
                        byte_fallback=config.tokenizer.byte_fallback)
    return Tokenizer(target)


def train_language_model(config: ExperimentConfig, run_dir: Path, *, reporter: Reporter | None = None,
                         log: Callable[[str], None] = print, resume: bool = False,
                         world: World | None = None) -> LMTrainSummary:
    """Train an LM run into `run_dir` (already created, empty; or a run to `resume`); with a
    distributed `world`, each rank trains on its own `train.batch_size` of the streams."""
    world = world or World()
    device = start_training(config.train, rank=world.rank)
    train_text, valid_text, source = read_corpus(config.data)

    def prepare() -> Tokenizer:
        checkpoint.atomic_write_text(run_dir / checkpoint.CONFIG, dump_yaml(config))
        return Tokenizer(run_dir / checkpoint.TOKENIZER) if resume else prepare_tokenizer(config, train_text, run_dir)

    tokenizer = main_then_others(world, prepare, lambda: Tokenizer(run_dir / checkpoint.TOKENIZER))
    backward = config.model.backward
    train_ids = encode_text(tokenizer, train_text, backward=backward)
    valid_ids = encode_text(tokenizer, valid_text, backward=backward)
    log(f"data: {source}: {train_ids.numel():,} training and {valid_ids.numel():,} validation tokens, "
        f"vocabulary {tokenizer.vocab_size}")
    if train_ids.numel() < 2 * config.train.batch_size or valid_ids.numel() < 2 * config.train.eval_streams:
        raise UserError("too little text for this batch size: lower train.batch_size / train.eval_streams")
    model = build_model(config, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id).to(device)
    if not resume:
        apply_word_vectors(config.model.word_vectors, model.encoder.embedding, tokenizer, log)
    parameters = sum(p.numel() for p in model.parameters())
    meta = checkpoint.run_meta("lm", vocab_size=tokenizer.vocab_size, parameters=parameters, data=source,
                               tokenizer_type=config.tokenizer.model_type)
    if world.is_main:
        checkpoint.write_meta(run_dir, meta)
    rows = config.train.batch_size  # this rank's rows of the streams of all ranks together
    train_streams = batchify(train_ids, rows * world.size)[world.rank * rows:(world.rank + 1) * rows]

    def train_batches(epoch: int) -> Iterator:
        offset = random.Random(config.train.seed + epoch).randrange(config.train.bptt) if epoch else 0
        return windows(train_streams, config.train.bptt, offset)

    def validate() -> dict[str, float]:
        return validation_metrics(model, valid_ids, streams=config.train.eval_streams, device=device)

    trainer = Trainer(model, config.train, run_dir, train_batches=train_batches, validate=validate,
                      reporter=reporter, device=device, meta=meta, world=world)
    result = fit_run(trainer, resume=resume)
    text = generate_text(model, tokenizer, prompt="", max_tokens=200, temperature=0.8, seed=config.train.seed,
                         backward=backward)
    return LMTrainSummary(run_dir, result, parameters, train_ids.numel(), valid_ids.numel(), text)


def validation_metrics(model, valid_ids: torch.Tensor, *, streams: int,
                       device: torch.device | None = None) -> dict[str, float]:
    """Loss (nats per token) and perplexity on the validation stream, read as `streams` streams."""
    total, count = evaluate_stream(model, valid_ids, num_streams=streams, bptt=512, device=device)
    return {"valid_loss": total / count, "valid_ppl": math.exp(min(total / count, 50.0))}


@torch.inference_mode()
def prime(model, tokenizer: Tokenizer, prompt: str, *, backward: bool = False) -> tuple[torch.Tensor, object]:
    """Feed all but the last prompt token; return (last token (1,), state). An empty prompt
    starts after a line break; a `backward` model reads the prompt from its end, which ends a line."""
    ids = encode_text(tokenizer, prompt, backward=backward)
    ids = torch.cat([torch.tensor([tokenizer.eos_id]), ids])  # the text starts (backward: ends) a line
    return prime_ids(model, ids[None])


@torch.inference_mode()
def prime_ids(model, ids: torch.Tensor) -> tuple[torch.Tensor, object]:
    """Feed each row of `ids` (B, T) but its last id: (last ids (B,), state after the rest)."""
    device = next(model.parameters()).device
    state = model.initial_state(ids.size(0))
    if ids.size(1) > 1:
        _, state = model(ids[:, :-1].to(device), state)
    return ids[:, -1].to(device), state


@torch.inference_mode()
def generate_text(model, tokenizer: Tokenizer, *, prompt: str, max_tokens: int, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, seed: int | None = None, no_repeat_ngram_size: int = 0,
                  on_text: Callable[[str], None] | None = None, backward: bool = False, lines: int = 0) -> str:
    """Sample a continuation of `prompt` (temperature 0 is greedy); `on_text` streams new text;
    `no_repeat_ngram_size` n > 0: no n tokens repeated in the continuation; `lines` n > 0: the text
    ends where the model writes its n-th line break (that break not included). A `backward` model
    writes the text before the prompt, last token first, so `on_text` gets it whole at the end."""
    generator = make_generator(seed)
    start, state = prime(model, tokenizer, prompt, backward=backward)
    context = prompt_line(tokenizer, prompt, backward=backward)
    produced: list[int] = []
    text_stream = TextStream(tokenizer, context)
    breaks = 0  # line breaks drawn

    def stream(new_ids: torch.Tensor) -> None:
        nonlocal breaks
        token = int(new_ids[0])
        breaks += token == tokenizer.eos_id
        if lines and breaks == lines:
            return  # the closing line break: the text ends before it
        produced.append(token)
        new_text = "" if backward else text_stream.push(produced[-1])
        if on_text is not None and new_text:
            on_text(new_text)

    sample(cpu_step(model), state, start.cpu(), max_tokens=max_tokens, temperature=temperature, top_k=top_k,
           top_p=top_p, generator=generator, no_repeat_ngram_size=no_repeat_ngram_size, on_tokens=stream,
           eos_id=tokenizer.eos_id if lines else None, eos_count=max(lines, 1))
    text = text_beside(tokenizer, context, produced, backward=backward)
    rest = text if backward else text_stream.finish()
    if on_text is not None and rest:
        on_text(rest)
    return text


def cpu_step(model):
    """The model's search step taking and giving CPU tensors: tokens are drawn with a CPU
    generator, so the same seed gives the same text on any device."""
    device = next(model.parameters()).device

    def step(prev_ids, state):
        log_probs, state = model.step(prev_ids.to(device), state)
        return log_probs.cpu(), state
    return step


@torch.inference_mode()
def beam_generate(model, tokenizer: Tokenizer, *, prompt: str, max_tokens: int, beam_size: int,
                  nbest: int = 1, no_repeat_ngram_size: int = 0, backward: bool = False,
                  one_line: bool = False) -> list[tuple[str, float]]:
    """The most likely continuations of `prompt` of exactly `max_tokens` tokens, by beam search
    (`backward`: the text before it). `one_line`: the most likely rest of the line instead, up to
    `max_tokens` tokens before its line break, ranked as translations are (GNMT length penalty 1)."""
    start, state = prime(model, tokenizer, prompt, backward=backward)
    hypotheses = beam_search(model.step, state, start, beam_size=beam_size, max_lengths=max_tokens,
                             eos_id=tokenizer.eos_id if one_line else None, alpha=1.0 if one_line else 0.0,
                             nbest=nbest, no_repeat_ngram_size=no_repeat_ngram_size)[0]
    context = prompt_line(tokenizer, prompt, backward=backward)
    return [(text_beside(tokenizer, context, h.tokens, backward=backward), h.score) for h in hypotheses]


def prompt_line(tokenizer: Tokenizer, prompt: str, *, backward: bool) -> list[int]:
    """The ids of the prompt's line that the new text joins: its last (its first, `backward`)."""
    return tokenizer.encode(prompt.split("\n")[0 if backward else -1])


def with_prompt(prompt: str, text: str, *, backward: bool) -> str:
    """The prompt and the text a model wrote for it, in reading order."""
    return text + prompt if backward else prompt + text


@torch.inference_mode()
def score_lines(model, tokenizer: Tokenizer, lines: Sequence[str], *, backward: bool = False,
                batch_size: int = 64) -> list[dict]:
    """Each line scored on its own, after a line break as a line starts in training, its own
    closing line break included (`backward`: from its end to the break before it), in input
    order: {"tokens", "nll", "nll_per_token", "perplexity"}. Lines are batched by length; no line
    sees another, so the sum differs from `score_text`'s, where each line follows the one before."""
    eos = tokenizer.eos_id
    sequences = [[eos] + (ids[::-1] if backward else ids) + [eos] for ids in tokenizer.encode_batch(list(lines))]
    device = next(model.parameters()).device
    model.eval()
    results: list[dict] = [{} for _ in lines]
    order = sorted(range(len(lines)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids = torch.full((len(rows), max(len(sequences[i]) for i in rows)), eos, dtype=torch.long)  # (B, T)
        for row, line in enumerate(rows):
            ids[row, :len(sequences[line])] = torch.tensor(sequences[line])
        # (B, T-1, V); an ensemble returns log-probabilities, which are their own logits
        logits, _ = model(ids[:, :-1].to(device), model.initial_state(len(rows)))
        nll = nn.functional.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:].to(device),
                                          reduction="none").cpu()  # (B, T-1)
        for row, line in enumerate(rows):
            count = len(sequences[line]) - 1  # the padding after a line's end is never scored
            results[line] = line_score(float(nll[row, :count].sum()), count)
    return results


@torch.inference_mode()
def score_text(model, tokenizer: Tokenizer, text: str, *, backward: bool = False) -> ScoreResult:
    """Negative log-likelihood of `text` read from its start, line breaks included (`backward`:
    from its end, after a line break, back to the line break before it: as many tokens when the
    text ends with a line break).

    Per-word perplexity spreads the same total over whitespace-separated words plus one per line
    break, so that models with different tokenizers can be compared.
    """
    eos = torch.tensor([tokenizer.eos_id])
    ids = (torch.cat([encode_text(tokenizer, text.removesuffix("\n"), backward=True), eos]) if backward
           else encode_text(tokenizer, text))
    ids = torch.cat([eos, ids])  # context: a line break
    device = next(model.parameters()).device
    total, count = evaluate_stream(model, ids, num_streams=1, bptt=1024, device=device)
    if count == 0:
        raise UserError("nothing to score: the input has no tokens")
    return ScoreResult.from_totals(total, count, words=len(text.split()) + text.count("\n"),
                                   character_level=tokenizer.is_character_level)

