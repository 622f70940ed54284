#!/usr/bin/env bash
# glibc's malloc on the :official train step (issue 14): XLA:CPU allocates its step buffers
# (~540 MB at batch 32) afresh every step, and glibc maps allocations that large with mmap, so
# every step page-faults them in again, 4 KiB at a time. GLIBC_TUNABLES=glibc.malloc.hugetlb=1
# (glibc >= 2.35) asks for transparent huge pages on those maps instead. One process per
# setting (glibc reads tunables at start-up), alternated A B B A; each times the official TF2
# code beside dvq_jax in float32 and bfloat16, and the TF worker inherits the setting, so both
# run under the same allocator. ~8 min on 2 cores.
# Usage: bash benchmarks/cpu_allocator.sh [--official_dir=/tmp/dvq_official] [--tf_python=...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
common=(--variants official --batches 32 --rounds 2 --steps 3 --dtypes "float32,bfloat16")
echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown);" \
     "$(ldd --version 2>/dev/null | head -1)"

one() {
  echo "=== GLIBC_TUNABLES='$1'"
  if [[ -n "$1" ]]; then
    GLIBC_TUNABLES="$1" python benchmarks/official_bench.py "${common[@]}" "${@:2}"
  else
    env -u GLIBC_TUNABLES python benchmarks/official_bench.py "${common[@]}" "${@:2}"
  fi
}

date -u
one "" "$@"
one "glibc.malloc.hugetlb=1" "$@"
one "glibc.malloc.hugetlb=1" "$@"
one "" "$@"
date -u
