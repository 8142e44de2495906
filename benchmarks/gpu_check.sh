#!/usr/bin/env bash
# One-shot GPU check, under 8 minutes on one GPU: prints a Markdown table of ResNet-50 (our YAML) training
# throughput at 224x224 with bf16 autocast + channels-last against torchvision's and timm's resnet50 in the
# same loop (eager and torch.compile), EfficientNet-B0/ConvNeXt-T when those zoo files exist, peak memory
# against the plan's estimate, and the default run on cuda. Paste the output into docs/BENCHMARKS.md.
#
#   bash benchmarks/gpu_check.sh                 # extra arguments go to benchmarks/gpu_check.py
#
# Without a GPU it says so, runs the same code path at toy sizes on the CPU (a dry run), and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python}"  # the interpreter with torch (a venv's python when called from outside it)
if "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  exec "$PYTHON" benchmarks/gpu_check.py --device cuda "$@"
fi
echo "No CUDA GPU on this machine: CPU dry run of the same code path (toy sizes; the numbers mean nothing)."
"$PYTHON" benchmarks/gpu_check.py --device cpu --dry-run --out "${TMPDIR:-/tmp}/gpu_check_dry_run" "$@"
echo "dry run passed; run this script on a machine with a GPU for the real table."
