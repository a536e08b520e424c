#!/usr/bin/env bash
# The GPU check, prepared as one command for a lent GPU (the device tool gives 15 minutes in all):
#   1. training tokens/s of lstmnlp's char LM against a bare cuDNN nn.LSTM loop of the same
#      shapes (benchmarks/train_throughput.py --device cuda; goal at least 0.9x);
#   2. the char-LM validation loss reached in 5 minutes (recipes/char-lm-shakespeare-gpu.yaml;
#      goal at most 1.35 nats/char on the last 10 % of tiny shakespeare).
# Needs torch with CUDA and lstmnlp's dependencies importable, and the data (DATA, default
# ../shared/data; carry a copy of tinyshakespeare/, multi30k/, mr-polarity/ where it is absent).
#   3. a 20-second fp16 run (train.precision: fp16, loss scaling) to see that it learns.
# About 9.5 minutes: run it with a limit of 600 s.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DATA="${DATA:-../shared/data}"
WORK="${WORK:-${OUT:-/tmp}/gpu-check}"
mkdir -p "$WORK"
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
timeout 150 python3 benchmarks/train_throughput.py --task lm --device cuda --steps 60 --rounds 2 --data "$DATA" \
  | tee "$WORK/throughput.txt"
timeout 400 python3 -m lstmnlp train recipes/char-lm-shakespeare-gpu.yaml --data-dir "$DATA/tinyshakespeare" \
  --out "$WORK/char-lm-gpu" | tail -n 25 | tee "$WORK/train.txt"
grep '"valid"' "$WORK/char-lm-gpu/metrics.jsonl" | tail -n 3
# 3. fp16 with loss scaling (train.precision: fp16) trains too: a short run, its last validations.
timeout 45 python3 -m lstmnlp train recipes/char-lm-shakespeare-gpu.yaml --data-dir "$DATA/tinyshakespeare" \
  --out "$WORK/char-lm-fp16" --set train.precision=fp16 --set train.max_time=20 --set train.eval_every=100 \
  | tail -n 5 || true
grep '"valid"' "$WORK/char-lm-fp16/metrics.jsonl" | tail -n 2 || true
