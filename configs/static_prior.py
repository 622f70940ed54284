r"""Static prior (paper Sec. 4.1, Fig. 3 and 4): codebooks trained alone on Gaussian blobs.

  python -m dvq_jax.main --config=configs/static_prior.py --workdir=/tmp/static_prior
  python -m dvq_jax.main --config=configs/static_prior.py:fig3 --workdir=...   # Fig. 3 only
  python -m dvq_jax.main --config=configs/static_prior.py:fig4 --workdir=...   # Fig. 4 only
  python -m dvq_jax.main --config=configs/static_prior.py:small --workdir=...  # seconds, for tests
  python -m dvq_jax.main --config=configs/static_prior.py:fig4 --config.num_factors='(70,420)' \
      --config.num_codebooks=8 --config.repeats=3 --workdir=...

Fig. 3 sweeps D (`dims`) x K (`codebook_sizes`) for one VQ codebook at N_G = `fig3_num_factors`,
trained and untrained ("random"). Fig. 4 sweeps N_G (`num_factors`) at D = `fig4_dim` for DVQ
(L = `num_codebooks` codebooks of K = `dvq_codebook_size`, each over D/L features), VQ
(K = `vq_codebook_size`) and VQ^K+ (K = `vq_kplus_codebook_size`). The paper does not give D, L or
the N_G range of Fig. 4; the choice here is D = 32, L = 16 (two features per codebook, the
Fig. 13/14 picture generalised) and N_G = 70, 140, ..., 420 (all above K_VQ^K+ = 50).
"""

import ml_collections

from dvq_jax import config_arg


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, fig3=False, fig4=False, small=False)
  config = ml_collections.ConfigDict()
  config.experiment = "static_prior"
  config.study = "all"  # all | fig3 | fig4
  if arg.fig3 and arg.fig4:
    raise ValueError("give at most one of the config arguments fig3 and fig4")
  if arg.fig3:
    config.study = "fig3"
  if arg.fig4:
    config.study = "fig4"

  # Blobs: N_G centres uniform in [-1, 1]^D, isotropic std sigma, equal points per centre.
  config.points_per_centre = 10  # training points around each centre
  config.test_points_per_centre = 10  # test points around each centre (a separate draw)
  config.sigma = 0.01

  # Fig. 3: one VQ codebook, K x D grid at a fixed N_G.
  config.dims = (2, 4, 8, 16, 32, 64, 128)  # D
  config.codebook_sizes = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)  # K
  config.fig3_num_factors = 100  # N_G

  # Fig. 4: DVQ vs VQ vs VQ^K+ over a range of N_G at a fixed D.
  config.num_factors = (70, 140, 210, 280, 350, 420)  # N_G
  config.fig4_dim = 32  # D
  config.num_codebooks = 16  # L of DVQ; each codebook covers D/L features
  config.dvq_codebook_size = 20  # K_DVQ
  config.vq_codebook_size = 20  # K_VQ
  config.vq_kplus_codebook_size = 50  # K_VQ^K+

  # Fig. 13/14 picture: D = 2, two depthwise codebooks of one feature each.
  config.picture_num_factors = 12
  config.picture_codebook_size = 6

  # Training, the same for every model: full-batch Adam, cosine decay to 0.
  config.repeats = 10  # Monte Carlo repetitions (data and init seeds) per setting
  config.steps = 500
  config.learning_rate = 0.05
  # normal | truncated_normal | uniform | uniform_unit_variance (dvq_jax.quantizers.init_codebooks).
  # The paper says "uniform random with mu = 0 and sigma = 1": init=uniform_unit_variance,
  # init_std=1 (U[-sqrt 3, sqrt 3]); the default here is normal with std 1.
  config.init = "normal"
  config.init_std = 1.0  # std for normal/uniform_unit_variance/truncated_normal, limit for uniform
  config.seed = 0

  if arg.small:
    config.points_per_centre = 4
    config.test_points_per_centre = 4
    config.dims = (2, 4)
    config.codebook_sizes = (3, 5)
    config.fig3_num_factors = 8
    config.num_factors = (6, 12)
    config.fig4_dim = 4
    config.num_codebooks = 2
    config.dvq_codebook_size = 3
    config.vq_codebook_size = 3
    config.vq_kplus_codebook_size = 5
    config.picture_num_factors = 5
    config.picture_codebook_size = 3
    config.repeats = 2
    config.steps = 30
  return config
