"""Translation runs: parallel data, sentencepiece, length-bucketed batches, training, decoding.

The library functions behind `lstmnlp train` (tasks translate and autoencoder: a sequence
autoencoder is a translation from each line to itself), `lstmnlp translate` and
`lstmnlp evaluate RUN_DIR`.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from lstmnlp import checkpoint
from lstmnlp.autoencoder_data import autoencoder_lines
from lstmnlp.batching import bucket_batches
from lstmnlp.config import ExperimentConfig, dump_yaml
from lstmnlp.distributed import World, epoch_shard, main_then_others
from lstmnlp.data import LoadReport, read_parallel, resolve_data_dir
from lstmnlp.device_batches import to_device
from lstmnlp.errors import UserError
from lstmnlp.metrics import bleu_and_chrf
from lstmnlp.models import build_model
from lstmnlp.models.seq2seq import Seq2SeqBatch
from lstmnlp.search import Hypothesis, beam_search, length_penalty, sample_scored
from lstmnlp.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer, train_tokenizer
from lstmnlp.train import Reporter, Trainer, TrainResult, fit_run, start_training
from lstmnlp.word_vectors import apply_word_vectors

Pair = tuple[list[int], list[int]]


@dataclass
class TranslationTrainSummary:
    run_dir: Path
    result: TrainResult
    parameters: int
    report: LoadReport
    sample: str


def read_parallel_split(config: ExperimentConfig, split: str) -> tuple[list[str], list[str]]:
    folder = resolve_data_dir(config.data.dir)
    if folder is None:
        raise UserError("translation reads local files: pass --data-dir DIR")
    data = config.data
    return read_parallel(folder / f"{split}.{data.source_lang}", folder / f"{split}.{data.target_lang}")


def read_training_pairs(config: ExperimentConfig) -> tuple[list[str], list[str], list[str], list[str], str]:
    """Training sources and targets, validation sources and targets, and where they came from."""
    data = config.data
    if config.task == "autoencoder":
        train, valid = autoencoder_lines(config)
        return train, train, valid, valid, f"{data.dir}/{data.train}"
    train_sources, train_targets = read_parallel_split(config, data.train)
    valid_sources, valid_targets = read_parallel_split(config, data.valid or "val")
    return (train_sources, train_targets, valid_sources, valid_targets,
            f"{data.dir}/{data.train}.{{{data.source_lang},{data.target_lang}}}")


def prepare_tokenizers(config: ExperimentConfig, sources: list[str], targets: list[str],
                       run_dir: Path) -> tuple[Tokenizer, Tokenizer]:
    """Train a joint (or a source and a target) sentencepiece model into the run."""
    if config.tokenizer.path:
        shutil.copyfile(Tokenizer(Path(config.tokenizer.path)).path, run_dir / checkpoint.TOKENIZER)
        tokenizer = Tokenizer(run_dir / checkpoint.TOKENIZER)
        return tokenizer, tokenizer
    options = dict(vocab_size=config.tokenizer.vocab_size, model_type=config.tokenizer.model_type,
                   character_coverage=config.tokenizer.character_coverage,
                   byte_fallback=config.tokenizer.byte_fallback)
    with tempfile.TemporaryDirectory() as folder:
        source_file, target_file = Path(folder) / "source.txt", Path(folder) / "target.txt"
        source_file.write_text("\n".join(sources) + "\n", encoding="utf-8")
        target_file.write_text("\n".join(targets) + "\n", encoding="utf-8")
        if config.tokenizer.joint:  # an autoencoder's targets are its sources: read them once
            files = [source_file] if config.task == "autoencoder" else [source_file, target_file]
            train_tokenizer(files, run_dir / "tokenizer", **options)
            tokenizer = Tokenizer(run_dir / checkpoint.TOKENIZER)
            return tokenizer, tokenizer
        train_tokenizer([source_file], run_dir / "tokenizer", **options)
        train_tokenizer([target_file], run_dir / "target_tokenizer", **options)
    return Tokenizer(run_dir / checkpoint.TOKENIZER), Tokenizer(run_dir / checkpoint.TARGET_TOKENIZER)


def encode_pairs(source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, sources: Sequence[str],
                 targets: Sequence[str], *, max_length: int, report: LoadReport,
                 sampling_alpha: float = 0.0) -> list[Pair]:
    """Token ids of each pair; empty or over-long pairs are skipped and counted in `report`;
    `sampling_alpha` > 0: sampled segmentations of both sides (subword regularization)."""
    pairs = []
    for source_ids, target_ids in zip(source_tokenizer.encode_batch(sources, sampling_alpha=sampling_alpha),
                                      target_tokenizer.encode_batch(targets, sampling_alpha=sampling_alpha)):
        if not source_ids or not target_ids:
            report.skip("pairs with an empty side")
        elif len(source_ids) > max_length or len(target_ids) > max_length:
            report.skip(f"pairs longer than {max_length} pieces")
        else:
            pairs.append((source_ids, target_ids))
    report.examples = len(pairs)
    return pairs


def collate(pairs: Sequence[Pair]) -> Seq2SeqBatch:
    """Pad a list of pairs: source + <eos>; target <bos> + y as input, y + <eos> as output."""
    source_len = max(len(s) for s, _ in pairs) + 1
    target_len = max(len(t) for _, t in pairs) + 1
    source = torch.full((len(pairs), source_len), PAD_ID, dtype=torch.long)
    inputs = torch.full((len(pairs), target_len), PAD_ID, dtype=torch.long)
    outputs = torch.full((len(pairs), target_len), PAD_ID, dtype=torch.long)
    lengths = torch.empty(len(pairs), dtype=torch.long)
    for row, (source_ids, target_ids) in enumerate(pairs):
        source[row, :len(source_ids) + 1] = torch.tensor(source_ids + [EOS_ID])
        inputs[row, :len(target_ids) + 1] = torch.tensor([BOS_ID] + target_ids)
        outputs[row, :len(target_ids) + 1] = torch.tensor(target_ids + [EOS_ID])
        lengths[row] = len(source_ids) + 1
    return Seq2SeqBatch(source, lengths, inputs, outputs)


def make_batches(pairs: Sequence[Pair], batch_size: int, rng: random.Random | None = None, *,
                 max_tokens: int = 0) -> list[Seq2SeqBatch]:
    """Batches of similar source length (less padding); shuffled pools when `rng` is given."""
    lengths = [(len(source), len(target)) for source, target in pairs]
    return [collate([pairs[i] for i in batch]) for batch in bucket_batches(lengths, batch_size, rng,
                                                                                     max_tokens=max_tokens)]


def train_translation(config: ExperimentConfig, run_dir: Path, *, reporter: Reporter | None = None,
                      log: Callable[[str], None] = print, resume: bool = False,
                      world: World | None = None) -> TranslationTrainSummary:
    """Train a translation (or autoencoder) run into `run_dir` (already created, empty; or a run
    to `resume`); with a distributed `world`, each rank trains on its shard of the batches."""
    world = world or World()
    device = start_training(config.train, rank=world.rank)
    train_sources, train_targets, valid_sources, valid_targets, source = read_training_pairs(config)

    def load() -> tuple[Tokenizer, Tokenizer]:
        source_tokenizer = Tokenizer(run_dir / checkpoint.TOKENIZER)
        target = run_dir / checkpoint.TARGET_TOKENIZER
        return source_tokenizer, Tokenizer(target) if target.is_file() else source_tokenizer

    def prepare() -> tuple[Tokenizer, Tokenizer]:
        checkpoint.atomic_write_text(run_dir / checkpoint.CONFIG, dump_yaml(config))
        return load() if resume else prepare_tokenizers(config, train_sources, train_targets, run_dir)

    source_tokenizer, target_tokenizer = main_then_others(world, prepare, load)
    report = LoadReport(source)
    pairs = encode_pairs(source_tokenizer, target_tokenizer, train_sources, train_targets,
                         max_length=config.data.max_length, report=report)
    valid_report = LoadReport("validation")
    valid_pairs = encode_pairs(source_tokenizer, target_tokenizer, valid_sources, valid_targets,
                               max_length=10**9, report=valid_report)
    log(f"data: {report.summary()}; {len(valid_pairs):,} validation pairs; vocabulary "
        f"{source_tokenizer.vocab_size}" + ("" if config.tokenizer.joint else f"/{target_tokenizer.vocab_size}"))
    model = build_model(config, vocab_size=source_tokenizer.vocab_size, pad_id=PAD_ID,
                        target_vocab_size=target_tokenizer.vocab_size).to(device)
    if not resume:
        apply_word_vectors(config.model.word_vectors, model.encoder.embedding, source_tokenizer, log)
        apply_word_vectors(config.model.target_word_vectors, model.decoder.embedding, target_tokenizer, log,
                           key="model.target_word_vectors")
    parameters = sum(p.numel() for p in model.parameters())
    meta = checkpoint.run_meta(config.task, vocab_size=source_tokenizer.vocab_size, parameters=parameters,
                               target_vocab_size=target_tokenizer.vocab_size, data=report.summary(),
                               joint_vocabulary=config.tokenizer.joint)
    if world.is_main:
        checkpoint.write_meta(run_dir, meta)
    valid_batches = make_batches(valid_pairs, config.train.batch_size)

    def train_batches(epoch: int):
        return epoch_shard(make_batches, epoch_pairs(), config.train, epoch, world)

    def epoch_pairs() -> list[Pair]:
        """The training pairs, segmented afresh each epoch under subword regularization."""
        if not config.tokenizer.sampling_alpha:
            return pairs
        return encode_pairs(source_tokenizer, target_tokenizer, train_sources, train_targets,
                            max_length=config.data.max_length, report=LoadReport(source),
                            sampling_alpha=config.tokenizer.sampling_alpha)

    def validate() -> dict[str, float]:
        return validation_metrics(model, valid_batches, valid_sources, valid_targets, valid_pairs,
                                  source_tokenizer, target_tokenizer, config, device)

    trainer = Trainer(model, config.train, run_dir, train_batches=train_batches, validate=validate,
                      metric="valid_bleu", higher_is_better=True, reporter=reporter, device=device,
                      meta=meta, world=world)
    result = fit_run(trainer, resume=resume)
    example = translate_lines(model, source_tokenizer, target_tokenizer, valid_sources[:1], beam_size=5)[0][0][0]
    return TranslationTrainSummary(run_dir, result, parameters, report,
                                   f"{valid_sources[0]}\n-> {example}\n(reference: {valid_targets[0]})")


@torch.inference_mode()
def validation_metrics(model, batches, sources, references, pairs, source_tokenizer, target_tokenizer,
                       config: ExperimentConfig, device) -> dict[str, float]:
    """Validation loss per target token, and greedy BLEU/chrF against the raw references."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        output = model.loss(to_device(device)(batch))
        total += float(output.total)
        count += int(output.count)
    limit = config.train.eval_bleu_batches * config.train.batch_size or len(sources)
    hypotheses = [n[0][0] for n in translate_lines(model, source_tokenizer, target_tokenizer, sources[:limit],
                                                    batch_size=config.train.batch_size, fast_greedy=True)]
    scores = bleu_and_chrf(hypotheses, references[:limit], warn_tokenized=False)
    loss = total / max(count, 1)
    return {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 50.0)), "valid_bleu": scores.bleu,
            "valid_chrf": scores.chrf}


@torch.inference_mode()
def translate_lines(model, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, lines: Sequence[str], *,
                    beam_size: int = 5, batch_size: int = 64, alpha: float = 1.0, max_length_ratio: float = 1.5,
                    nbest: int = 1, fast_greedy: bool = False, max_source_length: int = 0,
                    warn: Callable[[str], None] | None = None, bf16: bool = False,
                    no_repeat_ngram_size: int = 0, sampling: Sampling | None = None,
                    prefixes: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
    """Translate lines in batches of similar length; the result keeps input order.

    Each output is up to `nbest` (text, score) pairs; an empty line gives [("", 0.0)]. A
    hypothesis may have up to `max_length_ratio` x source pieces + 5 pieces. `fast_greedy` decodes
    greedily, one pass without beam bookkeeping (validation); beam size 1 through beam search is
    greedy too.
    `max_source_length` > 0 cuts longer sources (memory and time stay bounded), told through `warn`.
    `bf16` decodes under bfloat16 autocast (scores are summed in float32). `no_repeat_ngram_size`
    n > 0: no translation holds an n-gram of pieces twice. `sampling`: draw `nbest` translations
    per sentence from the model instead of searching (sampled back-translation, Edunov et al. 2018).
    `prefixes`: one target text per line ("" for none) that its translations begin with: its pieces
    are forced, then the search goes on (OpenNMT-py's `-tgt_prefix`, fairseq's `--prefix-size`).
    """
    model.eval()
    device = next(model.parameters()).device
    encoded = encode_sources(source_tokenizer, lines, max_source_length, warn)
    forced = target_tokenizer.encode_batch(list(prefixes)) if prefixes is not None else None
    results: list[list[tuple[str, float]]] = [[("", 0.0)] for _ in lines]
    generator = None
    if sampling is not None and sampling.seed is not None:
        generator = torch.Generator(device=device).manual_seed(sampling.seed)
    order = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = collate([(encoded[i], [0]) for i in rows])
        lengths = batch.source_lengths
        starts = torch.full((len(rows),), BOS_ID, dtype=torch.long, device=device)
        limits = (lengths.float() * max_length_ratio).ceil().long() + 5
        batch_prefixes = None
        if forced is not None:
            batch_prefixes = _prefix_tensor([forced[i] for i in rows], device)
            limits = torch.maximum(limits, (batch_prefixes >= 0).sum(dim=1).cpu() + 5)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            state = model.encode(batch.source_ids.to(device), lengths.to(device))
            if fast_greedy or sampling is not None:
                hypotheses = _sampled(model, state, starts, limits, 1 if fast_greedy else nbest,
                                      GREEDY if fast_greedy else sampling, generator=generator, alpha=alpha,
                                      no_repeat_ngram_size=0 if fast_greedy else no_repeat_ngram_size,
                                      prefixes=batch_prefixes)
            else:
                hypotheses = beam_search(model.step, state, starts, beam_size=beam_size, max_lengths=limits,
                                         eos_id=EOS_ID, alpha=alpha, nbest=nbest,
                                         no_repeat_ngram_size=no_repeat_ngram_size, prefixes=batch_prefixes)
        for row, found in zip(rows, hypotheses):
            results[row] = [(target_tokenizer.decode(h.tokens), h.score) for h in found]
    return results


def _prefix_tensor(prefixes: list[list[int]], device: torch.device) -> torch.Tensor | None:
    """(B, P) forced target pieces, -1 padded; None when no row has any."""
    width = max(map(len, prefixes), default=0)
    if not width:
        return None
    return torch.tensor([ids + [-1] * (width - len(ids)) for ids in prefixes], dtype=torch.long, device=device)


def encode_sources(tokenizer: Tokenizer, lines: Sequence[str], max_source_length: int = 0,
                   warn: Callable[[str], None] | None = None) -> list[list[int]]:
    """Source pieces of each line; `max_source_length` > 0 cuts longer ones, told through `warn`."""
    encoded = tokenizer.encode_batch(list(lines))
    if max_source_length:
        cut = [number for number, ids in enumerate(encoded, start=1) if len(ids) > max_source_length]
        encoded = [ids[:max_source_length] for ids in encoded]
        if cut and warn is not None:
            warn(f"{len(cut):,} line(s) longer than {max_source_length} pieces were cut to that length "
                 f"(first: line {cut[0]})")
    return encoded


@dataclass(frozen=True)
class Sampling:
    """How `translate --temperature` draws: temperature, top-k and nucleus filtering, and a seed
    (None: unseeded) for the one generator a `translate_lines` call draws with."""

    temperature: float
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None


GREEDY = Sampling(temperature=0.0)  # temperature 0: the most probable piece at every step


def _sampled(model, state, starts: torch.Tensor, limits: torch.Tensor, count: int, sampling: Sampling, *,
             generator: torch.Generator | None, alpha: float, no_repeat_ngram_size: int,
             prefixes: torch.Tensor | None = None) -> list[list[Hypothesis]]:
    """`count` translations drawn for each sentence (greedy: one), all in one batch (a sentence's
    draws are consecutive rows sharing its encoder memory), best first by length-normalized
    log-probability."""
    tokens, log_probs = sample_scored(model.step, state.expand_beams(count), starts.repeat_interleave(count),
                                      max_tokens=int(limits.max()), temperature=sampling.temperature,
                                      top_k=sampling.top_k, top_p=sampling.top_p, eos_id=EOS_ID,
                                      generator=generator, no_repeat_ngram_size=no_repeat_ngram_size,
                                      prefixes=None if prefixes is None else prefixes.repeat_interleave(count, dim=0))
    hypotheses: list[list[Hypothesis]] = [[] for _ in range(starts.size(0))]
    for row, (ids, scores) in enumerate(zip(tokens.tolist(), log_probs.tolist())):
        ids = ids[:int(limits[row // count])]
        length = ids.index(EOS_ID) if EOS_ID in ids else len(ids)
        score = sum(scores[:min(length + 1, len(ids))])  # <eos> included when it ended with one
        hypotheses[row // count].append(Hypothesis(ids[:length], score,
                                                   score / length_penalty(min(length + 1, len(ids)), alpha)))
    return [sorted(drawn, key=lambda h: h.normalized_score, reverse=True) for drawn in hypotheses]


@torch.inference_mode()
def attention_records(model, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, lines: Sequence[str],
                      translations: Sequence[str]) -> list[dict]:
    """Attention matrices of each (source, translation) pair, recomputed by one teacher-forced pass.

    Each record: source pieces (+ </s>), target pieces (+ </s>), and weights[target][source].
    """
    records = []
    device = next(model.parameters()).device
    for line, translation in zip(lines, translations):
        source_ids, target_ids = source_tokenizer.encode(line), target_tokenizer.encode(translation)
        if not source_ids:
            records.append({"source": [], "target": [], "weights": []})
            continue
        batch = collate([(source_ids, target_ids)])
        _, weights = model(Seq2SeqBatch(*(t.to(device) for t in batch)))  # (1, T, S)
        records.append({"source": [source_tokenizer.id_to_piece(i) for i in source_ids] + ["</s>"],
                        "target": [target_tokenizer.id_to_piece(i) for i in target_ids] + ["</s>"],
                        "weights": [[round(float(w), 5) for w in row] for row in weights[0].float()]})
    return records
