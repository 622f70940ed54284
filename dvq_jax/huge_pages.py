"""Transparent huge pages for XLA:CPU's step buffers, opt-in: with `DVQ_JAX_HUGE_PAGES=1` in the
environment, `python -m dvq_jax.main` re-executes itself under glibc's `glibc.malloc.hugetlb=1`
tunable. Off by default: a process that replaces itself surprises debuggers, profilers and
supervisors, and only XLA:CPU gains.

XLA:CPU allocates a compiled step's temporary buffers afresh on every call (543 MB for the
`configs/cifar10.py:official` train step at batch 32). glibc serves allocations that large with
`mmap` and unmaps them on `free`, so every step faults the same memory in again, 4 KiB at a time:
~142,000 page faults and ~0.3 s of system time in a 1.2-1.5 s step on the 2-core CPU here.
With `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc >= 2.35) malloc asks the kernel for 2 MiB
transparent huge pages on those maps: 400-2,500 faults a step, and the float32 step ran 15-17%
faster relative to the official TF2 code timed beside it (benchmarks/RESULTS.md, "Huge pages and
the bfloat16 head's gradient"). glibc reads
tunables only at process start, hence the re-exec: same interpreter, same command line
(`sys.orig_argv`), same pid, before any JAX import; the second start costs ~0.1 s (absl and
ml_collections imported again: 0.33-0.43 s against 0.24-0.25 s to a `--config` error).
Notebooks and other callers of `dvq_jax.main.run` are not re-executed; set the variable before
starting the kernel there.

Nothing changes without the opt-in, where it cannot help (not Linux/glibc >= 2.35, or
transparent huge pages set to `always` or `never`), or where `GLIBC_TUNABLES` already names
`glibc.malloc.hugetlb` (that choice is kept). Setting `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
before starting Python gives the same pages without a re-exec.
"""

import os
import platform
import sys
from collections.abc import Mapping

TUNABLE = "glibc.malloc.hugetlb"
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
OPT_IN = "DVQ_JAX_HUGE_PAGES"  # =1 enables the re-exec


def environ_with_huge_pages(environ: Mapping[str, str], libc: tuple[str, str],
                            thp_enabled: str) -> dict[str, str] | None:
  """The environment to re-execute with, or None to keep this process as it is.

  Args:
    environ: the current environment; nothing changes unless it sets `DVQ_JAX_HUGE_PAGES=1`.
    libc: `platform.libc_ver()`, e.g. `("glibc", "2.36")`.
    thp_enabled: the text of /sys/kernel/mm/transparent_hugepage/enabled, e.g.
      `"always [madvise] never"` (the bracketed mode is the kernel's).

  >>> environ_with_huge_pages({"DVQ_JAX_HUGE_PAGES": "1"}, ("glibc", "2.36"),
  ...                         "always [madvise] never")
  {'DVQ_JAX_HUGE_PAGES': '1', 'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}
  >>> environ_with_huge_pages({}, ("glibc", "2.36"), "always [madvise] never") is None
  True
  """
  if environ.get(OPT_IN) != "1":
    return None
  tunables = environ.get("GLIBC_TUNABLES", "")
  if TUNABLE in tunables:  # chosen already (=0 opts out)
    return None
  name, version = libc
  try:
    glibc_version = tuple(int(part) for part in version.split(".")[:2])
  except ValueError:
    return None
  if name != "glibc" or glibc_version < (2, 35):  # older glibc ignores the tunable
    return None
  if "[madvise]" not in thp_enabled:  # [always]: huge pages already; [never]: none to ask for
    return None
  return {**environ, "GLIBC_TUNABLES": f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"}


def reexec_with_huge_pages() -> None:
  """Re-executes this process with `glibc.malloc.hugetlb=1` where opted in and applicable; else
  returns."""
  if os.environ.get(OPT_IN) != "1" or not sys.platform.startswith("linux"):
    return
  try:
    with open(THP_ENABLED, encoding="ascii") as f:
      thp_enabled = f.read()
  except OSError:
    return
  environ = environ_with_huge_pages(os.environ, platform.libc_ver(), thp_enabled)
  if environ is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, sys.orig_argv, environ)
  except OSError:  # e.g. a sandbox that forbids exec: run on without huge pages
    return
