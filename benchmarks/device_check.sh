#!/usr/bin/env bash
# Accelerator readiness check (< 5 min on one GPU/TPU); `--small` runs it on CPU in ~1 minute.
# Usage: bash benchmarks/device_check.sh [--small] [--peak_tflops_bf16 989]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}" exec python benchmarks/device_check.py "$@"
