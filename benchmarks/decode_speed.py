"""Translation decoding speed and quality: greedy and beam 5, batch 1 and 64, fp32, bf16 and int8.

Each setting translates the same source file in this one process (models loaded once, so only
decoding is timed), fp32, bf16 and int8 in turn for --rounds alternating rounds (the fastest
round of each is kept: the three meet the same machine noise), and reports sentences/s, target
tokens/s and, with --ref, sacrebleu BLEU; bf16 (autocast) and int8 rows give the speed-up and
BLEU change against fp32. bf16 runs only where the CPU has it natively.

    python benchmarks/decode_speed.py RUN_DIR --input ../shared/data/multi30k/test2016.de \
        --ref ../shared/data/multi30k/test2016.en [--limit 200] [--threads 2] [--lm LM_RUN_DIR]

With --lm, also LM sampling tokens/s (`lstmnlp generate`'s own function, one stream, temperature
1 and greedy, --lm-tokens tokens after an empty prompt), fp32 and int8 in alternating rounds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lstmnlp.checkpoint import load_run
from lstmnlp.data import read_lines
from lstmnlp.errors import UserError
from lstmnlp.language_modeling import generate_text
from lstmnlp.metrics import bleu_and_chrf
from lstmnlp.quantize import quantize_int8
from lstmnlp.precision import native_bf16
from lstmnlp.translation import translate_lines

SETTINGS = [("greedy", 1, 64), ("greedy", 1, 1), ("beam 5", 5, 64), ("beam 5", 5, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", help="a translation run (omit with --lm alone)")
    parser.add_argument("--input", type=Path)
    parser.add_argument("--ref", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="first N sentences (batch 1 is slow)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the fastest of each is kept")
    parser.add_argument("--lm", type=Path, help="a language-model run: also time sampling")
    parser.add_argument("--lm-tokens", type=int, default=1000)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.lm:
        time_lm_sampling(args.lm, args.lm_tokens, args.rounds)
    if args.run_dir:
        time_translation(args)


def time_lm_sampling(run_dir: Path, tokens: int, rounds: int) -> None:
    loaded = load_run(run_dir, expected_task="lm")
    models = {"fp32": loaded.model, "int8": quantize_int8(load_run(run_dir, expected_task="lm").model)}
    for name, temperature in (("sampling, temperature 1", 1.0), ("greedy", 0.0)):
        best = {precision: float("inf") for precision in models}
        for round_ in range(rounds):  # precisions alternate, so machine noise hits them alike
            for precision, model in models.items():
                started = time.perf_counter()
                generate_text(model, loaded.tokenizer, prompt="", max_tokens=tokens, temperature=temperature,
                              seed=round_)
                best[precision] = min(best[precision], time.perf_counter() - started)
        for precision, seconds in best.items():
            print(f"LM {name}, {precision}: {tokens / seconds:,.0f} tokens/s ({tokens} tokens in {seconds:.2f} s)"
                  + (f", {best['fp32'] / seconds:.2f}x fp32" if precision != "fp32" else ""), flush=True)


def time_translation(args) -> None:
    lines = read_lines(args.input)
    references = read_lines(args.ref) if args.ref else None
    if args.limit:
        lines = lines[:args.limit]
        references = references[:args.limit] if references else None
    results = {}
    loaded = load_run(args.run_dir, expected_task="translate")
    models = {"fp32": loaded.model, "bf16": loaded.model,
              "int8": quantize_int8(load_run(args.run_dir, expected_task="translate").model)}
    if not native_bf16(torch.device("cpu")):  # PyTorch's LSTM kernel has no bf16 path there
        del models["bf16"]
    for name, beam, batch in SETTINGS:
        for _ in range(args.rounds):  # precisions alternate, so machine noise hits them alike
            for precision, model in models.items():
                started = time.perf_counter()
                output = translate_lines(model, loaded.tokenizer, loaded.target_tokenizer, lines, beam_size=beam,
                                         batch_size=batch, bf16=precision == "bf16")
                seconds = time.perf_counter() - started
                if (precision, name, batch) in results and results[precision, name, batch][0] <= seconds:
                    continue
                hypotheses = [candidates[0][0] for candidates in output]
                bleu = bleu_and_chrf(hypotheses, references).bleu if references else float("nan")
                results[precision, name, batch] = (seconds, bleu, hypotheses)
        for precision in models:
            seconds, bleu, hypotheses = results[precision, name, batch]
            pieces = sum(len(ids) + 1 for ids in loaded.target_tokenizer.encode_batch(hypotheses))
            print(f"{precision:4s} {name:6s} batch {batch:2d}: {len(lines) / seconds:7.1f} sentences/s  "
                  f"{pieces / seconds:8.0f} target tokens/s  {seconds:6.1f} s  BLEU {bleu:.2f}", flush=True)
    for other in [precision for precision in models if precision != "fp32"]:
        for name, _, batch in SETTINGS:
            (base_s, base_bleu, _), (other_s, other_bleu, _) = results["fp32", name, batch], results[other, name, batch]
            print(f"{other} vs fp32, {name}, batch {batch}: {base_s / other_s:.2f}x faster, "
                  f"BLEU {other_bleu - base_bleu:+.2f}")


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a missing run or file: one line, not a traceback
        raise SystemExit(f"error: {error}")
