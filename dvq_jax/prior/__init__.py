"""The code prior: an autoregressive Transformer over a VQ-VAE's (h, w, L) code grid.

  ordering.py   code grid <-> token sequence (position_major | codebook_major)
  model.py      CodePrior (linen): teacher forcing and a KV-cache step
  objective.py  loss, eval sums, bits/dim bookkeeping
  train.py      extraction of the codes and training through `training.loop`
  loading.py    `load(prior_workdir)` -> LoadedPrior (tokenizer, step, log_probs)
  sampling.py   ancestral sampling in one jitted loop
"""

from dvq_jax.prior.loading import LoadedPrior
from dvq_jax.prior.loading import load
from dvq_jax.prior.model import CodePrior
from dvq_jax.prior.ordering import ORDERS
from dvq_jax.prior.ordering import Ordering

__all__ = ["CodePrior", "LoadedPrior", "ORDERS", "Ordering", "load"]
