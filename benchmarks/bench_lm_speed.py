"""Training throughput of lstmnlp's language model against a bare fused nn.LSTM loop.

Both run forward + backward + AdamW + clipping on the same shapes (default: embedding 128,
LSTM 2x512, vocabulary 65, 64 streams x 128 steps), side by side in one process, alternating
rounds so that machine noise hits both. lstmnlp is measured through its real Trainer.

    python benchmarks/bench_lm_speed.py [--hidden 512] [--steps 30] [--rounds 2] [--stepped]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from lstmnlp.config import ModelConfig, TrainConfig
from lstmnlp.lm_data import batchify, windows
from lstmnlp.models.language_model import LanguageModel
from lstmnlp.train import Trainer


class BareModel(nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden, layers, batch_first=True, dropout=0.1)
        self.output = nn.Linear(hidden, vocab)

    def forward(self, ids, state):
        outputs, state = self.lstm(self.embedding(ids), state)
        return self.output(outputs), state


def bare_tokens_per_s(args, streams: torch.Tensor, precision: str) -> float:
    torch.manual_seed(0)
    model = BareModel(args.vocab, args.embedding, args.hidden, args.layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state, tokens, started = None, 0, 0.0
    for number, batch in enumerate(windows(streams, args.bptt)):
        if number == 3:
            started, tokens = time.perf_counter(), 0
        if number == args.steps + 3:
            break
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits, state = model(batch.inputs, state)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten())
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state = tuple(s.detach() for s in state)
        tokens += batch.targets.numel()
    return tokens / (time.perf_counter() - started)


def lstmnlp_tokens_per_s(args, streams: torch.Tensor, precision: str, *, stepped: bool = False) -> float:
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(embedding_dim=args.embedding, hidden_size=args.hidden,
                                      num_layers=args.layers, dropout=0.1, peephole=stepped),
                          vocab_size=args.vocab)
    steps = args.steps if not stepped else max(3, args.steps // 4)
    config = TrainConfig(batch_size=args.batch, bptt=args.bptt, precision=precision, max_steps=steps,
                         eval_every=10**9, log_every=10**9, warmup_steps=0)
    with tempfile.TemporaryDirectory() as folder:
        warm = TrainConfig(**{**config.__dict__, "max_steps": 3})
        Trainer(model, warm, Path(folder), train_batches=lambda e: windows(streams, args.bptt),
                validate=lambda: {"valid_loss": 0.0}).fit()
        trainer = Trainer(model, config, Path(folder), train_batches=lambda e: windows(streams, args.bptt),
                          validate=lambda: {"valid_loss": 0.0})
        started = time.perf_counter()
        trainer.fit()
        elapsed = time.perf_counter() - started
    return steps * args.batch * args.bptt / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--embedding", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--bptt", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stepped", action="store_true", help="also time the peephole (stepped) cell")
    args = parser.parse_args()
    torch.manual_seed(0)
    stream = torch.randint(0, args.vocab, (args.batch * args.bptt * (args.steps + 8),))
    streams = batchify(stream, args.batch)
    print(f"shapes: embedding {args.embedding}, LSTM {args.layers}x{args.hidden}, vocab {args.vocab}, "
          f"batch {args.batch} x {args.bptt}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for precision in ("fp32", "bf16"):
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(bare_tokens_per_s(args, streams, precision))
            ours.append(lstmnlp_tokens_per_s(args, streams, precision))
        best_bare, best_ours = max(bare), max(ours)
        print(f"{precision}: bare nn.LSTM {best_bare:,.0f} tok/s | lstmnlp {best_ours:,.0f} tok/s | "
              f"ratio {best_ours / best_bare:.2f}")
    if args.stepped:
        fused = lstmnlp_tokens_per_s(args, streams, "fp32")
        stepped = lstmnlp_tokens_per_s(args, streams, "fp32", stepped=True)
        print(f"peephole (stepped cell) fp32: {stepped:,.0f} tok/s, {fused / stepped:.1f}x slower than fused "
              f"({fused:,.0f} tok/s)")


if __name__ == "__main__":
    main()
