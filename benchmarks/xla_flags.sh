#!/usr/bin/env bash
# XLA:CPU flags on the :official train step (issue 14): one process per XLA_FLAGS setting (flags
# are read once per process), settings alternated A B C D D C B A so load drift hits all alike,
# and the official TF2 code timed beside dvq_jax's default first and last. ~10 min on 2 cores.
# Usage: bash benchmarks/xla_flags.sh [--official_dir=/tmp/dvq_official] [--tf_python=...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
common=(--variants official --batches 32 --rounds 2 --steps 3)
flags=("" "--xla_cpu_use_xnnpack=true" "--xla_cpu_use_onednn=true"
       "--xla_cpu_enable_fast_math=true")

with_tf() { python benchmarks/official_bench.py "${common[@]}" "$@"; }
jax_only() {
  echo "=== XLA_FLAGS='$1'"
  XLA_FLAGS="$1" python benchmarks/official_bench.py "${common[@]}" --no_tf \
      --dtypes float32,bfloat16
}

date -u
with_tf "$@"
for setting in "${flags[@]}"; do jax_only "${setting}"; done
for ((i = ${#flags[@]} - 1; i >= 0; i--)); do jax_only "${flags[i]}"; done
with_tf "$@"
date -u
