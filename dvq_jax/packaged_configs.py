"""The config files that ship with the package (a checkout's `configs/`), from Python or a shell.

An installed package holds them in `dvq_jax/configs/`; a checkout (also an editable install) in
`configs/` beside `dvq_jax/`. Print a file's path to pass it to `--config`, or copy it to edit:

  python -m dvq_jax.packaged_configs                 # lists them
  python -m dvq_jax.main --config=$(python -m dvq_jax.packaged_configs cifar10) --workdir=W
  cp $(python -m dvq_jax.packaged_configs demo) my_demo.py
"""

import pathlib
import sys

_PACKAGE = pathlib.Path(__file__).resolve().parent


def directory() -> pathlib.Path:
  """The shipped config files' folder: `dvq_jax/configs` installed, `configs` in a checkout."""
  installed = _PACKAGE / "configs"
  return installed if installed.is_dir() else _PACKAGE.parent / "configs"


def names() -> list[str]:
  """The shipped configs' names, sorted (file names without `.py`).

  >>> "cifar10" in names()
  True
  """
  return sorted(p.stem for p in directory().glob("*.py") if not p.stem.startswith("_"))


def path(name: str) -> pathlib.Path:
  """The file of shipped config `name` (`"cifar10"` or `"cifar10.py"`).

  Raises:
    ValueError: no shipped config has that name (the message lists them).
  """
  stem = name.removesuffix(".py")
  if stem not in names():
    raise ValueError(f"no packaged config {name!r}; use one of {', '.join(names())}")
  return directory() / f"{stem}.py"


def main(argv: list[str]) -> int:
  if len(argv) > 2:
    print("error: use `python -m dvq_jax.packaged_configs [name]`", file=sys.stderr)
    return 2
  if len(argv) == 1:
    print("\n".join(names()))
    return 0
  try:
    print(path(argv[1]))
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
