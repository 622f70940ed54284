"""Sphinx configuration of the dvq_jax documentation.

Build: `pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build` (from the repository
root). The notebooks render from `notebooks/` (linked here as `docs/notebooks`) with their stored
state, which is clean: they are not executed at build time (`nb_execution_mode = "off"`).
"""

import pathlib
import sys

_DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(_DOCS.parent))  # the checkout's dvq_jax, also without `pip install -e`
sys.path.insert(0, str(_DOCS / "_ext"))

import dvq_jax  # noqa: E402  (after the path setup above)

project = "dvq_jax"
author = "dvq_jax authors"
release = dvq_jax.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "config_fields",
    "results_tables",
]

# myst-nb writes its notebook copies next to the output folder: docs/jupyter_execute for docs/_build.
exclude_patterns = ["_build", "jupyter_execute", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
# .rst first: autosummary writes its generated API pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# MyST: `{directive}` blocks, $math$, heading anchors for `[text](page.md#anchor)` links.
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 4

# The notebooks are stored without outputs and are not run at build time (CI runs them as tests).
nb_execution_mode = "off"

# API reference: generated from the docstrings (Google style).
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes sections as fields of the class: NamedTuple fields are not described twice.
napoleon_use_ivar = True

html_theme = "sphinx_book_theme"
html_title = "dvq_jax"
html_theme_options = {
    "repository_url": "https://github.com/dvq-jax/dvq_jax",
    "use_repository_button": True,
    "path_to_docs": "docs",
    "show_toc_level": 2,
}
html_static_path = []

# The notebooks' `!git` / `%pip` lines are IPython, not Python: rendered unhighlighted.
suppress_warnings = ["misc.highlighting_failure"]
