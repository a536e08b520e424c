"""Translation decoding speed and quality: greedy and beam 5, batch 1 and 64, fp32, bf16 and int8.

Each setting translates the same source file in this one process (model loaded once per
precision, so only decoding is timed) and reports sentences/s, target tokens/s and, with --ref,
sacrebleu BLEU; bf16 (autocast) and int8 rows give the speed-up and BLEU change against fp32.

    python benchmarks/decode_speed.py RUN_DIR --input ../shared/data/multi30k/test2016.de \
        --ref ../shared/data/multi30k/test2016.en [--limit 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lstmnlp.checkpoint import load_run
from lstmnlp.data import read_lines
from lstmnlp.metrics import bleu_and_chrf
from lstmnlp.quantize import quantize_int8
from lstmnlp.translation import translate_lines

SETTINGS = [("greedy", 1, 64), ("greedy", 1, 1), ("beam 5", 5, 64), ("beam 5", 5, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--ref", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="first N sentences (batch 1 is slow)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = read_lines(args.input)
    references = read_lines(args.ref) if args.ref else None
    if args.limit:
        lines = lines[:args.limit]
        references = references[:args.limit] if references else None
    results = {}
    for precision in ("fp32", "bf16", "int8"):
        loaded = load_run(args.run_dir, expected_task="translate")
        model = quantize_int8(loaded.model) if precision == "int8" else loaded.model
        for name, beam, batch in SETTINGS:
            started = time.perf_counter()
            output = translate_lines(model, loaded.tokenizer, loaded.target_tokenizer, lines, beam_size=beam,
                                     batch_size=batch, bf16=precision == "bf16")
            seconds = time.perf_counter() - started
            hypotheses = [candidates[0][0] for candidates in output]
            pieces = sum(len(ids) + 1 for ids in loaded.target_tokenizer.encode_batch(hypotheses))
            bleu = bleu_and_chrf(hypotheses, references).bleu if references else float("nan")
            results[precision, name, batch] = (seconds, bleu)
            print(f"{precision:4s} {name:6s} batch {batch:2d}: {len(lines) / seconds:7.1f} sentences/s  "
                  f"{pieces / seconds:8.0f} target tokens/s  {seconds:6.1f} s  BLEU {bleu:.2f}", flush=True)
    for other in ("bf16", "int8"):
        for name, _, batch in SETTINGS:
            (base_s, base_bleu), (other_s, other_bleu) = results["fp32", name, batch], results[other, name, batch]
            print(f"{other} vs fp32, {name}, batch {batch}: {base_s / other_s:.2f}x faster, "
                  f"BLEU {other_bleu - base_bleu:+.2f}")


if __name__ == "__main__":
    main()
