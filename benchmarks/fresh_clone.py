"""What a newcomer waits for: the README's two commands, each in a fresh clone and a fresh venv.

Clones this checkout's HEAD (committed work only) into a temporary directory and runs each
command of the README's "Two commands on a fresh machine" block there, in a new virtual
environment of its own (`python3 -m venv`, nothing preinstalled; `pip` fetches the packages), and
times it. A row a command: wall time, exit status, and what it reports (the test summary line,
or the demo's final evaluation).

    python benchmarks/fresh_clone.py --output=docs/images/benchmarks/fresh_clone.json
    python benchmarks/fresh_clone.py --list                         # the commands, not run
    python benchmarks/fresh_clone.py --command "python -c 'print(42)'"  # another command

Runs for about 25 minutes on an idle 2-core machine; stop other work first, or the times say
more about the machine's load than about the commands.
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import results_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION = "## Two commands on a fresh machine"


def readme_commands(readme: pathlib.Path = ROOT / "README.md") -> list[str]:
  """The command lines of the first bash block under the README's fresh-machine section."""
  text = readme.read_text(encoding="utf-8")
  if SECTION not in text:
    sys.exit(f"{readme} has no '{SECTION}' section: update SECTION in {__file__}")
  block = re.search(r"```bash\n(.*?)```", text[text.index(SECTION):], re.DOTALL)
  return [line for line in block.group(1).splitlines() if line.strip()]


def summary(output: str) -> str:
  """The line a command reports its result on: pytest's summary, or the last evaluation."""
  lines = output.splitlines()
  for pattern in (r"^=*\s*\d+ (passed|failed)", r"evaluated in .* \{"):
    found = [line for line in lines if re.search(pattern, line)]
    if found:
      return found[-1].strip("= ")
  return lines[-1] if lines else ""


def run_fresh(command: str, clone: pathlib.Path) -> dict:
  """`command` in `clone` with a virtual environment of its own; its time and result."""
  venv = pathlib.Path(tempfile.mkdtemp(prefix="venv-", dir=clone.parent))
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  env = {key: value for key, value in os.environ.items()
         if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
  env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
  print(f"$ {command}", flush=True)
  start = time.perf_counter()
  result = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True,
                          text=True, check=False)
  seconds = time.perf_counter() - start
  output = result.stdout + result.stderr
  line = summary(output)
  print(f"  exit {result.returncode} after {seconds / 60:.1f} min: {line}", flush=True)
  return {"command": command, "minutes": seconds / 60, "exit_code": result.returncode,
          "result": line}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--command", action="append", default=None,
                      help="run this instead of the README's commands (repeatable)")
  parser.add_argument("--list", action="store_true", help="print the README's commands and exit")
  results_file.add_flag(parser)
  args = parser.parse_args()
  commands = args.command or readme_commands()
  if args.list:
    print("\n".join(commands))
    return
  for workdir in re.findall(r"--workdir=(\S+)", " ".join(commands)):
    if pathlib.Path(workdir).exists():
      sys.exit(f"{workdir} exists, and a fresh machine has none: remove it first")
  with tempfile.TemporaryDirectory(prefix="fresh_clone-") as tmp:
    clone = pathlib.Path(tmp) / "dvq_jax"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, check=True,
                          capture_output=True, text=True).stdout.strip()
    print(f"# fresh clone of {head} in {clone}", flush=True)
    rows = [run_fresh(command, clone) for command in commands]
  results_file.write(args.output, rows, clone_of=head, python=sys.version.split()[0])
  if any(row["exit_code"] for row in rows):
    sys.exit(1)


if __name__ == "__main__":
  main()
