"""The README's python blocks run as written: the first code a newcomer copies must work."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks(path: pathlib.Path) -> list[str]:
  return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.M | re.S)


def test_readme_python_blocks_run():
  blocks = _python_blocks(ROOT / "README.md")
  assert blocks, "README.md has no ```python block"
  for block in blocks:
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
    # The quantizer example ends with the gradients: both must be finite and reach both inputs.
    if "dcodebooks" in namespace:
      import numpy as np  # pylint: disable=import-outside-toplevel
      assert np.isfinite(namespace["dz"]).all() and np.abs(namespace["dz"]).sum() > 0
      assert np.isfinite(namespace["dcodebooks"]).all() and np.abs(namespace["dcodebooks"]).sum() > 0
