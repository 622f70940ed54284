"""The README's python blocks run as written: the first code a newcomer copies must work."""

import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run_and_the_quantizer_example_gets_gradients():
  blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"),
                      re.M | re.S)
  assert blocks, "README.md has no ```python block"
  namespace = {}
  for block in blocks:
    exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  # The quantizer example ends with the gradients: finite, and reaching both z and the codebooks.
  for name in ("dz", "dcodebooks"):
    gradient = np.asarray(namespace[name])
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0, name
