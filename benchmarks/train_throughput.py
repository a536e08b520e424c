"""Training throughput of lstmnlp against bare nn.LSTM loops of the same shapes, side by side.

For each task at its recipe's sizes, on batches built from the real data in ../shared/data by
lstmnlp's own pipeline (tokenizer, length buckets), the loops run in one process, in
alternating rounds so that machine noise hits them alike:

  bare     embedding -> nn.LSTM(s) -> (attention) -> linear -> cross-entropy, written plainly,
           forward + backward + Adam + clipping: what the kernels give
  lstmnlp  the real model driven by the real Trainer (LR schedule, clipping, logging, metrics)

The ratio lstmnlp / bare is what the rest of the pipeline costs (goal: at least 0.9).

    python benchmarks/train_throughput.py [--task lm|seq2seq|classifier|all] [--steps 30] [--rounds 2]
        [--precision auto|bf16|fp32] [--data ../shared/data] [--device cpu|cuda] [--peephole]
        [--lm-recipe RECIPE]

Tasks and shapes:
  lm          recipes/char-lm-shakespeare.yaml: its embedding, LSTM layers and streams x bptt (2x384, 16 x 32),
              or --lm-recipe's (and, where it has weight dropout, the same model without it, as the bare loop)
  seq2seq     recipes/multi30k-de-en.yaml (biLSTM 2x256, decoder 512 without input feeding, joint
              unigram 8k, 64 sentences, dropout 0.3), against bare loops with the same attention:
              with Luong attention, as the recipe has it (Bahdanau), and Bahdanau with input
              feeding (a step-by-step decoder; the bare loop has none, for reference)
  classifier  recipes/sst2.yaml shapes on MR sentences: embedding 300, biLSTM 1x256, max pooling,
              the recipe's embedding and output dropout (nn.Dropout in the bare loop).
              The bare loop runs nn.LSTM's bidirectional kernel over the padded batch, whose
              backward direction then starts in the padding (wrong for every shorter row): an
              upper bound, not an equal. lstmnlp runs each direction on its real tokens.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lstmnlp.config import ExperimentConfig, load_config  # noqa: E402
from lstmnlp.data import LoadReport  # noqa: E402
from lstmnlp.models import build_model  # noqa: E402
from lstmnlp.tokenizer import PAD_ID, Tokenizer, train_tokenizer  # noqa: E402
from lstmnlp.precision import native_bf16  # noqa: E402
from lstmnlp.train import Trainer  # noqa: E402


# ---------------------------------------------------------------- bare models (same shapes)

class BareLanguageModel(nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden, layers, batch_first=True, dropout=dropout)
        self.output = nn.Linear(hidden, vocab)

    def loss(self, batch) -> torch.Tensor:
        outputs, _ = self.lstm(self.embedding(batch.inputs))
        logits = self.output(outputs)
        return nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten())


class BareSeq2Seq(nn.Module):
    """biLSTM encoder over the padded source, one fused decoder LSTM over the target, Luong
    general or Bahdanau additive attention after it, tanh(W[c; h]), output layer; the recipe's
    dropouts (between encoder layers, on target embeddings, before the output); no masking,
    bridge or tying."""

    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int, decoder: int,
                 attention: str, dropout: float) -> None:
        super().__init__()
        self.attention = attention
        self.source_embedding = nn.Embedding(vocab, embedding)
        self.target_embedding = nn.Embedding(vocab, embedding)
        self.encoder = nn.LSTM(embedding, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout)
        self.decoder = nn.LSTM(embedding, decoder, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.key = nn.Linear(2 * hidden, decoder, bias=False)
        if attention == "bahdanau":
            self.query = nn.Linear(decoder, decoder, bias=False)
            self.energy = nn.Linear(decoder, 1, bias=False)
        self.combine = nn.Linear(2 * hidden + decoder, decoder)
        self.output = nn.Linear(decoder, vocab)

    def loss(self, batch) -> torch.Tensor:
        memory, _ = self.encoder(self.source_embedding(batch.source_ids))  # (B, S, 2H)
        queries, _ = self.decoder(self.dropout(self.target_embedding(batch.target_inputs)))  # (B, T, D)
        if self.attention == "bahdanau":  # v^T tanh(W q + U k): (B, T, S, D) before the energy
            scores = self.energy(torch.tanh(self.query(queries)[:, :, None] + self.key(memory)[:, None])).squeeze(-1)
        else:
            scores = torch.bmm(queries, self.key(memory).transpose(1, 2))  # (B, T, S)
        weights = torch.softmax(scores.float(), dim=-1)
        contexts = torch.bmm(weights.to(memory.dtype), memory)
        vectors = self.dropout(torch.tanh(self.combine(torch.cat([contexts, queries], dim=-1))))
        logits = self.output(vectors)
        return nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch.target_outputs.flatten(),
                                           ignore_index=PAD_ID)


class BareClassifier(nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int, classes: int,
                 embedding_dropout: float, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        self.embedding_dropout = nn.Dropout(embedding_dropout)  # the recipe's dropouts, as nn.Dropout
        self.lstm = nn.LSTM(embedding, hidden, layers, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(2 * hidden, classes)

    def loss(self, batch) -> torch.Tensor:
        outputs, _ = self.lstm(self.embedding_dropout(self.embedding(batch.ids)))
        pooled = self.dropout(outputs.max(dim=1).values)
        return nn.functional.cross_entropy(self.output(pooled).float(), batch.labels)


# ---------------------------------------------------------------- the two timed loops

def bare_tokens_per_s(model: nn.Module, batches: Sequence, count: Callable, precision: str,
                      device: torch.device) -> float:
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as fast as Adam gets
    tokens, started = 0, 0.0
    for number, batch in enumerate(batches):
        if number == 3:  # warm-up batches are not timed
            _synchronize(device)
            started, tokens = time.perf_counter(), 0
        batch = type(batch)(*(tensor.to(device, non_blocking=True) for tensor in batch))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model.loss(batch)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += count(batch)
    _synchronize(device)
    return tokens / (time.perf_counter() - started)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def lstmnlp_tokens_per_s(config: ExperimentConfig, model: nn.Module, batches: Sequence, count: Callable,
                         precision: str, device: torch.device) -> float:
    """The Trainer's own figure: one log window over all timed steps (the final checkpoint
    and validation come after it and are not counted)."""
    timed = len(batches) - 3
    train = replace(config.train, precision=precision, device=device.type, max_steps=timed, max_time=0,
                    max_epochs=0, eval_every=10**9, log_every=timed, warmup_steps=0)
    with tempfile.TemporaryDirectory() as folder:
        model = model.to(device)
        warm = replace(train, max_steps=3, log_every=3)
        Trainer(model, warm, Path(folder), train_batches=lambda epoch: batches[:3],
                validate=lambda: {"valid_loss": 0.0}, device=device).fit()
        (Path(folder) / "timed").mkdir()
        trainer = Trainer(model, train, Path(folder) / "timed", train_batches=lambda epoch: batches[3:],
                          validate=lambda: {"valid_loss": 0.0}, device=device)
        trainer.fit()
    return trainer.last_train_record["tokens_per_s"]


# ---------------------------------------------------------------- tasks

LM_RECIPE = ROOT / "recipes/char-lm-shakespeare.yaml"


def lm_setup(data: Path, steps: int, peephole: bool = False, recipe: Path = LM_RECIPE):
    from lstmnlp.lm_data import batchify, windows
    config = load_config(recipe)
    configs = [(config, "recipe")]
    if config.model.weight_dropout:  # the bare loop has no DropConnect: the same model without it too
        configs.append((load_config(recipe, ["model.weight_dropout=0"]), "recipe without weight dropout"))
    if peephole:  # the stepped cell, looping over time in Python
        configs.append((load_config(recipe, ["model.peephole=true"]), "peephole cell"))
    text = (data / "tinyshakespeare/input.txt").read_text(encoding="utf-8")
    vocabulary = {char: index for index, char in enumerate(sorted(set(text)))}
    stream = torch.tensor([vocabulary[char] for char in text])
    batches = list(windows(batchify(stream, config.train.batch_size), config.train.bptt))
    batches = (batches * (1 + (steps + 3) // len(batches)))[:steps + 3]  # big batches: epochs over again
    model = config.model
    bare = lambda: BareLanguageModel(len(vocabulary), model.embedding_dim, model.hidden_size,  # noqa: E731
                                     model.num_layers, model.dropout)
    ours = lambda cfg: build_model(cfg, vocab_size=len(vocabulary), pad_id=PAD_ID)  # noqa: E731
    shapes = (f"embedding {model.embedding_dim}, LSTM {model.num_layers}x{model.hidden_size}, vocab "
              f"{len(vocabulary)}, {config.train.batch_size} streams x {config.train.bptt}")
    configs = [(cfg, label, "bare") for cfg, label in configs]
    return configs, batches, {"bare": bare}, ours, lambda batch: batch.targets.numel(), shapes


def seq2seq_setup(data: Path, steps: int, peephole: bool = False):
    from lstmnlp.translation import encode_pairs, make_batches
    recipe = load_config(ROOT / "recipes/multi30k-de-en.yaml")
    fused = load_config(ROOT / "recipes/multi30k-de-en.yaml",
                        ["model.input_feeding=false", "model.attention=luong"])
    lines = 6400
    sources = (data / "multi30k/train.de").read_text(encoding="utf-8").splitlines()[:lines]
    targets = (data / "multi30k/train.en").read_text(encoding="utf-8").splitlines()[:lines]
    tokenizer = _tokenizer(sources + targets, recipe)
    pairs = encode_pairs(tokenizer, tokenizer, sources, targets, max_length=recipe.data.max_length,
                         report=LoadReport("train"))
    batches = make_batches(pairs, recipe.train.batch_size, random.Random(0))[:steps + 3]
    model = recipe.model
    bares = {kind: (lambda kind=kind: BareSeq2Seq(tokenizer.vocab_size, model.embedding_dim, model.hidden_size,
                                                  model.num_layers, model.decoder_hidden_size, kind, model.dropout))
             for kind in ("luong", "bahdanau")}
    ours = lambda cfg: build_model(cfg, vocab_size=tokenizer.vocab_size, pad_id=PAD_ID)  # noqa: E731
    shapes = (f"embedding {model.embedding_dim}, biLSTM {model.num_layers}x{model.hidden_size}, decoder "
              f"{model.decoder_hidden_size}, vocab {tokenizer.vocab_size}, {recipe.train.batch_size} sentences")
    feeding = load_config(ROOT / "recipes/multi30k-de-en.yaml", ["model.input_feeding=true"])
    configs = [(fused, "Luong attention", "luong"), (recipe, "recipe: Bahdanau attention", "bahdanau"),
               (feeding, "Bahdanau with input feeding", "bahdanau")]
    return configs, batches, bares, ours, lambda batch: int((batch.target_outputs != PAD_ID).sum()), shapes


def classifier_setup(data: Path, steps: int, peephole: bool = False):
    from lstmnlp.classification_data import encode_texts, make_batches
    config = load_config(ROOT / "recipes/sst2.yaml")
    folder = data / "mr-polarity"
    texts, labels = [], []
    for label, name in enumerate(("rt-polarity.neg", "rt-polarity.pos")):
        lines = (folder / name).read_text(encoding="utf-8", errors="replace").splitlines()
        texts += [line.lower() for line in lines]
        labels += [label] * len(lines)
    tokenizer = _tokenizer(texts, config)
    encoded = encode_texts(tokenizer, texts, max_length=config.data.max_length)
    batches = make_batches(list(zip(encoded, labels)), config.train.batch_size, random.Random(0))[:steps + 3]
    model = config.model
    bare = lambda: BareClassifier(tokenizer.vocab_size, model.embedding_dim, model.hidden_size,  # noqa: E731
                                  model.num_layers, 2, model.embedding_dropout, model.dropout)
    ours = lambda cfg: build_model(cfg, vocab_size=tokenizer.vocab_size, pad_id=PAD_ID, num_classes=2)  # noqa: E731
    shapes = (f"embedding {model.embedding_dim}, biLSTM {model.num_layers}x{model.hidden_size}, "
              f"{model.pooling} pooling, vocab {tokenizer.vocab_size}, {config.train.batch_size} texts (MR)")
    return [(config, "recipe", "bare")], batches, {"bare": bare}, ours, lambda batch: int(batch.lengths.sum()), shapes


def _tokenizer(lines: list[str], config: ExperimentConfig) -> Tokenizer:
    folder = Path(tempfile.mkdtemp(prefix="throughput-"))
    (folder / "text.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    train_tokenizer([folder / "text.txt"], folder / "tokenizer", vocab_size=config.tokenizer.vocab_size,
                    model_type=config.tokenizer.model_type, character_coverage=1.0)
    return Tokenizer(folder / "tokenizer.model")


TASKS = {"lm": lm_setup, "seq2seq": seq2seq_setup, "classifier": classifier_setup}


def run_task(name: str, args) -> None:
    setup = partial(lm_setup, recipe=args.lm_recipe) if name == "lm" else TASKS[name]
    configs, batches, bares, ours, count, shapes = setup(args.data, args.steps, args.peephole)
    print(f"\n{name}: {shapes}; {len(batches) - 3} timed batches, {args.precision}, {args.device}")
    results: dict[str, list[float]] = {key: [] for key in bares} | {label: [] for _, label, _ in configs}
    for _ in range(args.rounds):
        for key, bare in bares.items():
            torch.manual_seed(0)
            results[key].append(bare_tokens_per_s(bare(), batches, count, args.precision, args.device))
        for config, label, _ in configs:
            torch.manual_seed(0)
            results[label].append(lstmnlp_tokens_per_s(config, ours(config), batches, count, args.precision,
                                                       args.device))
    for key in bares:
        print(f"  bare nn.LSTM loop{'' if key == 'bare' else f' ({key})'}: {max(results[key]):,.0f} tokens/s")
    for _, label, key in configs:
        best = max(results[label])
        print(f"  lstmnlp ({label}): {best:,.0f} tokens/s, ratio {best / max(results[key]):.2f}"
              f"{'' if key == 'bare' else f' to the {key} bare loop'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--steps", type=int, default=30, help="timed batches per loop")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is kept")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto: bf16 where the hardware has it natively, else fp32")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--lm-recipe", type=Path, default=LM_RECIPE,
                        help="lm: the recipe whose shapes to time (recipes/char-lm-shakespeare-gpu.yaml on a GPU)")
    parser.add_argument("--peephole", action="store_true", help="lm: also time the peephole (stepped) cell")
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"), help="cpu or cuda")
    args = parser.parse_args()
    if args.precision == "auto":
        args.precision = "bf16" if native_bf16(args.device) else "fp32"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    for name in (TASKS if args.task == "all" else [args.task]):
        run_task(name, args)


if __name__ == "__main__":
    main()
