"""Colab notebooks: stored clean (badge, install cell, parameters, no outputs) and run to the end.

Each notebook is executed top to bottom in a fresh python3 kernel with SMALL sizes injected right
after its `parameters` cell (the papermill convention); a failing cell fails the test. The
notebooks assert their own results (straight-through identity, K^L codes, round trips), so a run
that completes also checked them.
"""

import os
import pathlib
import re

import nbclient
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BADGE = re.compile(
    r"\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]"
    r"\(https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/notebooks/"
    r"([\w.-]+\.ipynb)\)")

# Sizes for CI: the notebook's own defaults make a meaningful run of a few minutes in Colab.
SMALL = {
    "01_quantizers.ipynb": {"NUM_FACTORS": 5, "POINTS_PER_CENTRE": 4, "CODEBOOK_SIZE": 3,
                            "STEPS": 20},
    "02_static_prior.ipynb": {"CONFIG_ARG": "small", "REPEATS": 2, "STEPS": 30},
    "03_train_dvq_vae.ipynb": {"STEPS": 4, "BATCH_SIZE": 8, "CODEBOOK_SIZE": 16,
                               "NUM_CODEBOOKS": 2, "CODEBOOK_DIM": 4, "HIDDEN_CHANNELS": 16,
                               "RESIDUAL_CHANNELS": 8, "MAX_EVAL_EXAMPLES": 16},
    "04_inspect_checkpoint.ipynb": {"TRAIN_CONFIG": "demo.py:small", "TRAIN_STEPS": 4,
                                    "NUM_IMAGES": 4},
    "05_code_prior.ipynb": {"VQVAE_CONFIG": "demo.py:small", "VQVAE_STEPS": 4, "PRIOR_STEPS": 4,
                            "PRIOR_WIDTH": 16, "PRIOR_DEPTH": 1, "NUM_SAMPLES": 4},
}


def _read(name: str) -> nbformat.NotebookNode:
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  nbformat.validate(nb)
  return nb


def _parameters_index(nb: nbformat.NotebookNode) -> int:
  tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
  assert len(tagged) == 1, f"want exactly one cell tagged 'parameters', found {len(tagged)}"
  return tagged[0]


def test_every_notebook_has_small_parameters():
  assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_stored_notebook_is_clean_and_colab_ready(name):
  nb = _read(name)
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, (
          f"{name} is stored with outputs; strip them (see CONTRIBUTING.md)")
    assert "execution" not in cell.metadata, f"{name} is stored with cell timings; strip them"
  first, install = nb.cells[0], nb.cells[1]
  badge = BADGE.match(first.source) if first.cell_type == "markdown" else None
  assert badge, f"{name} must start with the Open In Colab badge"
  repo, target = badge.groups()
  assert target == name, f"{name}'s badge opens {target}"
  assert install.cell_type == "code"
  assert 'IN_COLAB = "google.colab" in sys.modules' in install.source
  assert f'REPO_URL = "https://github.com/{repo}"' in install.source, (
      f"{name}: the install cell's REPO_URL and the badge name different repositories")
  assert "%pip install" in install.source
  parameters = nb.cells[_parameters_index(nb)]
  for field in SMALL[name]:
    assert re.search(rf"^{field} = ", parameters.source, re.M), (
        f"{name}'s parameters cell does not define {field}")


def _execute(name: str, tmp_path: pathlib.Path, monkeypatch) -> nbformat.NotebookNode:
  nb = _read(name)
  index = _parameters_index(nb)
  small = "\n".join(f"{key} = {value!r}" for key, value in SMALL[name].items())
  if re.search(r"^WORKDIR = ", nb.cells[index].source, re.M):
    small += f"\nWORKDIR = {str(tmp_path / 'workdir')!r}"
  injected = nbformat.v4.new_code_cell(small, metadata={"tags": ["injected-parameters"]})
  nb.cells.insert(index + 1, injected)
  # The kernel imports dvq_jax from this checkout whether or not it is pip-installed.
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  return nb


@pytest.mark.extended  # each takes ~25-45 s on 2 cores, most of it compiling
@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name, tmp_path, monkeypatch):
  nb = _execute(name, tmp_path, monkeypatch)
  for cell in nb.cells:
    if cell.cell_type == "code" and "plt.show()" in cell.source:
      # A library call that switches pyplot to Agg would silently blank every later figure.
      assert any("image/png" in o.get("data", {}) for o in cell.outputs), (
          f"{name}: a cell that calls plt.show() displayed no figure:\n{cell.source[:300]}")
