"""Output files of the command lines: checked before any compute, written whole or not at all.

  outputs.check_file(path, "--output", (".npz",))    # before loading a model
  with outputs.atomic_file(path, "--output") as f:   # a temporary name beside `path`, renamed
    np.savez(f, images=images)                       # over it only when everything is written

A failed write (a full disk, a vanished directory) removes the temporary file and raises
`ConfigError` with one line naming the flag; so does an interrupt (`remove_partial` is what the
signal policy calls before it exits). gs:// paths are written directly: an object store makes an
object visible only once it is complete.
"""

import contextlib
import os
import shutil
import uuid

from etils import epath

from dvq_jax.errors import ConfigError

_partial: set[str] = set()  # temporary paths being written, removed on failure or interrupt


def _is_remote(path: str) -> bool:
  return "://" in str(path)


def _check_parent(path: str, flag: str) -> None:
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise ConfigError(f"{flag}={path}: the directory {parent} does not exist; create it or"
                      " choose another path")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ConfigError(f"{flag}={path}: the directory {parent} is not writable; choose another"
                      " path")


def check_file(path: str, flag: str, suffixes: tuple[str, ...] = ()) -> None:
  """`path` can be written as a file: a known suffix, an existing writable parent, not a folder.

  Raises:
    ConfigError: one line naming `flag` and the fix.
  """
  if not path:
    raise ConfigError(f"{flag} is empty; give a file path")
  if suffixes and not str(path).lower().endswith(suffixes):
    raise ConfigError(f"{flag}={path} must end in {' or '.join(suffixes)}; rename it, e.g."
                      f" {flag}={os.path.splitext(path)[0]}{suffixes[0]}")
  if _is_remote(path):
    return
  if os.path.isdir(path):
    raise ConfigError(f"{flag}={path} is a directory; give a file path")
  _check_parent(path, flag)


def check_folder(path: str, flag: str) -> None:
  """`path` can be written as a new folder: absent (or empty), its parent writable.

  Raises:
    ConfigError: one line naming `flag` and the fix.
  """
  if not path:
    raise ConfigError(f"{flag} is empty; give a folder path")
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f"{flag}={path} is a file, not a folder; give a new folder's path")
  if os.path.isdir(path) and os.listdir(path):
    raise ConfigError(f"{flag}={path} is a folder that is not empty; give a new or empty one")
  _check_parent(os.path.normpath(path), flag)


def _temporary(path: str) -> str:
  head, tail = os.path.split(os.path.abspath(path))
  return os.path.join(head, f".{tail}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove(path: str) -> None:
  if os.path.isdir(path):
    shutil.rmtree(path, ignore_errors=True)
  else:
    with contextlib.suppress(OSError):
      os.remove(path)
  _partial.discard(path)


def _write_error(path: str, flag: str, error: OSError) -> ConfigError:
  reason = error.strerror or type(error).__name__
  return ConfigError(f"cannot write {flag}={path} ({reason}); nothing was written, free some"
                     " space or choose another path")


@contextlib.contextmanager
def _renamed_on_success(temporary: str, target: str, path: str, flag: str):
  """Around the writing of `temporary`: renames it to `target` when the block succeeds, removes
  it when the block fails (an OSError becomes `_write_error` for `path`)."""
  _partial.add(temporary)
  try:
    yield
    os.replace(temporary, target)
    _partial.discard(temporary)
  except OSError as e:
    _remove(temporary)
    raise _write_error(path, flag, e) from None
  except BaseException:
    _remove(temporary)
    raise


@contextlib.contextmanager
def atomic_file(path: str, flag: str):
  """Yields a binary file object; on success its bytes appear at `path` in one rename.

  Raises:
    ConfigError: an OSError while writing or renaming (the temporary file is removed).
  """
  if _is_remote(path):
    try:
      with epath.Path(path).open("wb") as f:
        yield f
    except OSError as e:
      raise _write_error(path, flag, e) from None
    return
  temporary = _temporary(path)
  with _renamed_on_success(temporary, path, path, flag):
    with open(temporary, "wb") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_folder(path: str, flag: str):
  """Yields a temporary folder beside `path` to fill; on success it becomes `path` (which must
  be absent or empty, see `check_folder`) in one rename.

  Raises:
    ConfigError: an OSError while writing or renaming (the temporary folder is removed).
  """
  target = os.path.normpath(path)
  temporary = _temporary(target)
  with _renamed_on_success(temporary, target, path, flag):
    os.mkdir(temporary)
    yield temporary


def remove_partial() -> None:
  """Removes every temporary output still being written (called by the signal policy)."""
  for path in list(_partial):
    _remove(path)
