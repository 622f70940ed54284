"""With DVQ_JAX_HUGE_PAGES=1 the CLI re-executes itself with glibc's huge-page tunable where it
helps, and only there; without it, never."""

import json
import os
import pathlib
import platform
import subprocess
import sys

import pytest

from dvq_jax import huge_pages

ROOT = pathlib.Path(__file__).resolve().parents[1]
MADVISE = "always [madvise] never"
ON = {"DVQ_JAX_HUGE_PAGES": "1"}


@pytest.mark.parametrize("environ, libc, thp, expected", [
    (ON, ("glibc", "2.36"), MADVISE, "glibc.malloc.hugetlb=1"),
    ({}, ("glibc", "2.36"), MADVISE, None),  # not opted in
    ({"DVQ_JAX_HUGE_PAGES": "0"}, ("glibc", "2.36"), MADVISE, None),
    ({**ON, "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, ("glibc", "2.35"), MADVISE,
     "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
    ({**ON, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, ("glibc", "2.36"), MADVISE, None),
    ({**ON, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=2"}, ("glibc", "2.36"), MADVISE, None),
    (ON, ("glibc", "2.34"), MADVISE, None),  # the tunable came with 2.35
    (ON, ("glibc", "2.9"), MADVISE, None),  # 2.9 < 2.35 as versions, not as strings
    (ON, ("", ""), MADVISE, None),  # musl, or libc not found
    (ON, ("glibc", "2.36"), "[always] madvise never", None),  # huge pages without asking
    (ON, ("glibc", "2.36"), "always madvise [never]", None),
])
def test_environ_with_huge_pages(environ, libc, thp, expected):
  environ = {"PATH": "/bin", **environ}
  result = huge_pages.environ_with_huge_pages(environ, libc, thp)
  if expected is None:
    assert result is None
  else:
    assert result == {**environ, "GLIBC_TUNABLES": expected}


def _machine_applies() -> bool:
  """Whether this machine is one where the tunable helps: Linux, glibc >= 2.35, THP madvise."""
  try:
    thp = pathlib.Path(huge_pages.THP_ENABLED).read_text()
  except OSError:
    return False
  name, version = platform.libc_ver()
  major, minor = (int(part) for part in version.split(".")[:2]) if version else (0, 0)
  return name == "glibc" and (major, minor) >= (2, 35) and "[madvise]" in thp


@pytest.mark.parametrize("opt_in, preset", [(True, None), (True, "glibc.malloc.hugetlb=0"),
                                            (False, None)])
def test_cli_runs_its_config_under_the_tunable_in_the_same_process(tmp_path, opt_in, preset):
  """Opted in, the config file (loaded after the re-exec) sees the tunable and the pid the
  caller started, so signals sent to that pid still reach the run; a preset value is kept.
  Not opted in, the command runs as started."""
  record = tmp_path / "record.json"
  config = tmp_path / "record_config.py"
  config.write_text(
      "import json, os\n"
      "def get_config():\n"
      f"  with open({str(record)!r}, 'w') as f:\n"
      "    json.dump({'pid': os.getpid(), 'tunables': os.environ.get('GLIBC_TUNABLES')}, f)\n"
      "  raise RuntimeError('recorded')\n")
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", *ON)}
  if opt_in:
    env.update(ON)
  if preset:
    env["GLIBC_TUNABLES"] = preset
  proc = subprocess.Popen(
      [sys.executable, "-m", "dvq_jax.main", f"--config={config}", f"--workdir={tmp_path / 'w'}"],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 2 and err.strip().endswith("RuntimeError: recorded"), err
  seen = json.loads(record.read_text())
  assert seen["pid"] == proc.pid
  if preset:
    assert seen["tunables"] == preset
  else:
    applies = opt_in and _machine_applies()
    assert seen["tunables"] == ("glibc.malloc.hugetlb=1" if applies else None)


def test_the_cli_module_loads_no_jax_before_it_re_executes():
  """The re-exec happens after `dvq_jax.main` is imported: a JAX import there is paid twice
  (1.3-3 s more per command on a 2-core VM, measured)."""
  proc = subprocess.run([sys.executable, "-c", "import sys, dvq_jax.main; print(sorted("
                         "m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib')))"],
                        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
  assert proc.stdout.strip() == "[]", proc.stdout
