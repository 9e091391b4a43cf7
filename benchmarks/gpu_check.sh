#!/usr/bin/env bash
# The GPU check in one go, on a fresh machine with an NVIDIA driver: a venv with TensorFlow's CUDA
# wheels, the GPU it sees, the quick preset comparison (python -m benchmarks --quick_gpu, JSON),
# then a short p100.flags run of trainer.py on the embedded data and the trainer's own steps/s.
#
#   bash benchmarks/gpu_check.sh                  # everything under ~/cgan_gpu_check
#   bash benchmarks/gpu_check.sh /scratch/check   # somewhere else
#
# Settings (environment variables): PYTHON=/path/to/python skips creating the venv and uses that
# interpreter as it is; TRAIN_STEPS (default 3000) is the length of the p100.flags run;
# BENCHMARK_FLAGS (default empty) are added to the quick comparison's flags, e.g. "--steps=100".
set -euo pipefail

REPOSITORY="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(mkdir -p "${1:-$HOME/cgan_gpu_check}" && cd "${1:-$HOME/cgan_gpu_check}" && pwd)"
TRAIN_STEPS="${TRAIN_STEPS:-3000}"
BENCHMARK_FLAGS="${BENCHMARK_FLAGS:-}"
cd "$REPOSITORY"
started=$SECONDS

if [[ -z "${PYTHON:-}" ]]; then
    echo "== venv $OUT/venv: tensorflow[and-cuda]==2.21.0 and requirements.txt"
    python3 -m venv "$OUT/venv"
    PYTHON="$OUT/venv/bin/python"
    "$PYTHON" -m pip install --quiet --upgrade pip
    "$PYTHON" -m pip install --quiet "tensorflow[and-cuda]==2.21.0"
    "$PYTHON" -m pip install --quiet -r requirements.txt
fi

echo "== the GPU"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
else
    echo "nvidia-smi not found"
fi
"$PYTHON" -c "import tensorflow as tf; print('TensorFlow', tf.__version__, 'sees', tf.config.list_physical_devices('GPU'))"

echo "== python -m benchmarks --quick_gpu"
# shellcheck disable=SC2086  # BENCHMARK_FLAGS is a list of flags
"$PYTHON" -m benchmarks --quick_gpu --data_dir="$OUT/tfds" --json="$OUT/quick_gpu.json" $BENCHMARK_FLAGS

echo "== trainer.py --flagfile=p100.flags, $TRAIN_STEPS steps on the embedded data"
rm -rf "$OUT/p100_run"
train_started=$SECONDS
"$PYTHON" trainer.py --flagfile=p100.flags --dataset=isic_skin_cancer/synthetic_64 --data_dir="$OUT/tfds" \
    --train_steps="$TRAIN_STEPS" --workdir="$OUT/p100_run" 2>&1 | tee "$OUT/p100_run.log"
train_seconds=$((SECONDS - train_started))

echo "== summary"
echo "trainer.py wall time for $TRAIN_STEPS steps (start-up, tracing, XLA compilation, grids and the final checkpoint included): ${train_seconds} s"
"$PYTHON" - "$OUT/p100_run.log" "$OUT/p100_run/config.json" <<'EOF'
import json
import re
import statistics
import sys

log, config = sys.argv[1], json.load(open(sys.argv[2]))
rates = [float(x) for x in re.findall(r"([0-9.]+) steps/s", open(log).read())]
print(f"trainer's own steps/s, one figure per --summary_every steps: {', '.join(f'{r:.1f}' for r in rates)}")
if len(rates) > 1:
    steady = statistics.median(rates[1:])   # the first window holds the start
    print(f"median after the first window: {steady:.1f} steps/s -> p100.flags' 100,000 steps in "
          f"{100_000 / steady / 60:.1f} min of training steps (target: 10 min)")
print(f"resolved: precision {config['resolved_precision']}, jit_compile {config['resolved_jit_compile']}")
EOF
echo "quick comparison: $OUT/quick_gpu.json; whole check: $((SECONDS - started)) s"
