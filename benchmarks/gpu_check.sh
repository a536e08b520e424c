#!/usr/bin/env bash
# The GPU check, prepared as one command for a lent GPU (the device tool gives 15 minutes in all):
#   1. training tokens/s of lstmnlp against bare cuDNN nn.LSTM loops of the same shapes
#      (benchmarks/train_throughput.py --device cuda; goal at least 0.9x): the char LM at the GPU
#      recipe's shapes, then the seq2seq and classifier recipes' shapes;
#   2. the char-LM validation loss reached in 5 minutes, the run alone on the GPU unless
#      LM_VARIANTS (below) names others (recipes/char-lm-shakespeare-gpu.yaml; goal at most
#      1.35 nats/char on the last 10 % of tiny shakespeare);
#   3. a 20-second fp16 run (train.precision: fp16, loss scaling) to see that it learns;
#   4. a sample from the 5-minute model.
# Each stage has its own time limit and a failed stage does not stop the next. Needs torch with
# CUDA and lstmnlp's dependencies importable, and the data (DATA, default ../shared/data; carry a
# copy of tinyshakespeare/, multi30k/ and mr-polarity/ where it is absent). About 8 minutes: run
# it with a limit of 600 s. The figures land flat in RESULTS (default $OUT, else /tmp/gpu-check).
# LM_VARIANTS="[RECIPE.yaml] --set KEY=VALUE ...; ..." trains up to three more char LMs at the
# same time, each its options (and recipe, if one is named); they all share the GPU, so each run
# then takes fewer steps than it would alone. Each run's summary and validations: NAME.txt.
# A dry run on a CPU: DEVICE=cpu LM_TIME=10 bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DATA="${DATA:-../shared/data}"
DEVICE="${DEVICE:-cuda}"
LM_TIME="${LM_TIME:-300}"
RESULTS="${RESULTS:-${OUT:-/tmp/gpu-check}}"
RUNS="$(mktemp -d)"
mkdir -p "$RESULTS"
stage() { echo; echo "== $* ($(date +%T))"; }

stage environment
{ python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn',
torch.backends.cudnn.version(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 || true
  nproc; git log --oneline -1 2>/dev/null || true; } | tee "$RESULTS/environment.txt"

stage "1. training throughput against bare nn.LSTM loops"
timeout 100 python3 benchmarks/train_throughput.py --task lm --lm-recipe recipes/char-lm-shakespeare-gpu.yaml \
  --device "$DEVICE" --steps 40 --rounds 2 --data "$DATA" 2>&1 | tee "$RESULTS/throughput.txt"
for task in seq2seq classifier; do
  timeout 45 python3 benchmarks/train_throughput.py --task "$task" --device "$DEVICE" --steps 60 --rounds 2 \
    --data "$DATA" 2>&1 | grep -v '^torch ' | tee -a "$RESULTS/throughput.txt"
done

stage "2. char LM, $LM_TIME s${LM_VARIANTS:+, beside variants: ${LM_VARIANTS}}"
lm_run() {  # name, then an optional recipe (*.yaml), then --set options
  local name="$1" recipe=recipes/char-lm-shakespeare-gpu.yaml; shift
  if [[ "${1:-}" == *.yaml ]]; then recipe="$1"; shift; fi
  timeout $((LM_TIME + 120)) python3 -m lstmnlp train "$recipe" \
    --data-dir "$DATA/tinyshakespeare" --out "$RUNS/$name" --set train.device="$DEVICE" \
    --set train.max_time="$LM_TIME" "$@" > "$RUNS/$name.log" 2>&1
  { echo "$recipe $*"; tail -n 16 "$RUNS/$name.log"
    grep '"valid' "$RUNS/$name/metrics.jsonl" 2>/dev/null; } > "$RESULTS/$name.txt"
}
IFS=';' read -ra variants <<< "${LM_VARIANTS:-}"
for index in "${!variants[@]}"; do
  # shellcheck disable=SC2086
  lm_run "char-lm-v$((index + 1))" ${variants[$index]} &
done
lm_run char-lm-gpu
wait
for file in "$RESULTS"/char-lm-*.txt; do
  echo "-- $file"; grep -E "best valid_loss|steps \(epochs\)|training tokens/s" "$file"
done

stage "3. fp16 with loss scaling, 20 s"
timeout 50 python3 -m lstmnlp train recipes/char-lm-shakespeare-gpu.yaml --data-dir "$DATA/tinyshakespeare" \
  --out "$RUNS/char-lm-fp16" --set train.device="$DEVICE" --set train.precision=fp16 --set train.max_time=20 \
  --set train.eval_every=100 2>&1 | tail -n 6 | tee "$RESULTS/extras.txt"
grep '"valid' "$RUNS/char-lm-fp16/metrics.jsonl" 2>/dev/null | tail -n 3 | tee -a "$RESULTS/extras.txt"

stage "4. a sample from the $LM_TIME-second model"
timeout 40 python3 -m lstmnlp generate "$RUNS/char-lm-gpu" --prompt "ROMEO:" --max-tokens 400 --seed 1 2>&1 \
  | tee -a "$RESULTS/extras.txt"
stage done
