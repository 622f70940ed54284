"""The VQ-VAE model's config fields: one-line checks and the sizes derived from them.

`check_model_fields` is the body of `model.build_model`'s checks; `vector_dim`,
`codes_per_image` and `code_alphabet_size` give the sizes a config implies (D, the codes per
image, the values one code takes) to the model, the objective and the evaluation.
"""

from dvq_jax import backends
from dvq_jax import quantizers as q
from dvq_jax.errors import ConfigError
from dvq_jax.vqvae import layers
from dvq_jax.vqvae import likelihoods
from dvq_jax.vqvae.bottleneck import CODEBOOK_PARAMETERIZATIONS
from dvq_jax.vqvae.bottleneck import COSINE_QUANTIZERS
from dvq_jax.vqvae.bottleneck import ESTIMATOR_QUANTIZERS
from dvq_jax.vqvae.bottleneck import FIXED_GRID
from dvq_jax.vqvae.bottleneck import LOSS_REDUCTIONS
from dvq_jax.vqvae.bottleneck import QUANTIZERS
from dvq_jax.vqvae.bottleneck import STOCHASTIC_QUANTIZERS
from dvq_jax.vqvae.bottleneck import alphabet_size
from dvq_jax.vqvae.bottleneck import codes_per_position
from dvq_jax.vqvae.bottleneck import latent_channels
from dvq_jax.vqvae.level_fields import check_level_fields
from dvq_jax.vqvae.level_fields import positions_over_levels

# The choices of config.model.dtype, .architecture and .input_scaling; `model` imports them
# from here (this module must not import `model`, whose build_model calls it).
DTYPES = backends.COMPUTE_DTYPES
ARCHITECTURES = ("vqvae", "dvq_official")
INPUT_SCALINGS = ("symmetric", "official")


def _check_choice(name: str, value, choices) -> None:
  if value not in choices:
    raise ConfigError(f"config.{name} = {value!r} is unknown; use one of {', '.join(choices)}")


def _check_positive(name: str, value, minimum: int = 1) -> None:
  if not isinstance(value, int) or value < minimum:
    raise ConfigError(f"config.{name} = {value!r}; set it to an integer >= {minimum}")


def vector_dim(config) -> int:
  """Features of each codebook vector the model uses: D, or L*D for every quantizer whose
  vectors span the whole latent (all but dvq) when `config.equal_width` is True.

  With `equal_width` every quantizer's encoder emits the same L*D channels, so comparing
  quantizers changes only the quantizer: vq and svq quantize the whole L*D-wide vector with
  one codebook of L*D-dim vectors, mvq quantizes it L times (decoder input L*L*D), dvq splits it
  into L slices of D.

  >>> from dvq_jax.vqvae import defaults
  >>> config = defaults.learned_prior()  # L = 8, D = 8
  >>> config.quantizer, config.equal_width = "vq", True
  >>> vector_dim(config)
  64
  """
  dim = config.codebook_dim
  width = config.num_codebooks * dim
  if config.get("equal_width", False) and latent_channels(config.quantizer,
                                                           config.num_codebooks, dim) != width:
    return width
  return dim


def codes_per_image(config, image_shape: tuple[int, int, int]) -> int:
  """Codes the model stores per image: h*w*L for dvq/mvq/fsq/lfq/bsq, h*w*L*M for rvq/rfsq/rlfq,
  h*w for vq and svq.

  h, w = height / 2^num_downsamples, width / 2^num_downsamples; with `levels` = 2 the top
  level's (h/2)*(w/2) positions add their codes too (`level_fields.positions_over_levels`). Use it for the rate,
  `metrics.rate_bits_per_dim(codes_per_image(...), code_alphabet_size(config), H*W*C)`.

  Raises:
    ConfigError: the image size is not divisible by 2^num_downsamples, or (svq) h*w is not
      divisible by L.

  >>> from dvq_jax.vqvae import defaults
  >>> codes_per_image(defaults.learned_prior(), (32, 32, 3))  # 8x8 positions, L = 8
  512
  """
  height, width = int(image_shape[0]), int(image_shape[1])
  num_downsamples = config.model.num_downsamples
  factor = 2**num_downsamples
  if height % factor or width % factor:
    raise ConfigError(
        f"images of {height}x{width} do not divide by 2^config.model.num_downsamples ="
        f" {factor}; choose num_downsamples so that both sides divide"
    )
  positions = positions_over_levels(height // factor, width // factor, config.get("levels", 1))
  if config.quantizer == "svq" and positions % config.num_codebooks:
    raise ConfigError(
        f"svq splits the {positions} latent positions into config.num_codebooks ="
        f" {config.num_codebooks} groups; choose a num_codebooks that divides {positions}"
    )
  return positions * codes_per_position(config.quantizer, config.num_codebooks,
                                       config.get("num_stages", 1))


def code_alphabet_size(config) -> int:
  """Values one code of the config's model takes: K, prod(fsq_levels) (fsq, rfsq), 2^D (lfq,
  bsq, rlfq).

  >>> from dvq_jax.vqvae import defaults
  >>> config = defaults.learned_prior()
  >>> config.quantizer, config.fsq_levels = "fsq", (8, 5, 5)
  >>> code_alphabet_size(config)
  200
  """
  return alphabet_size(config.quantizer, config.codebook_size, config.codebook_dim,
                       tuple(config.get("fsq_levels", ())))


# The unigram rate keeps an (L, alphabet) float32 histogram: at most 2^24 entries (64 MiB).
MAX_HISTOGRAM_ENTRIES = 1 << 24


def _check_families(config) -> None:
  """The toolbox and family fields: cosine, gradient_estimator, num_stages, fsq_levels, lfq,
  bsq, codebook_parameterization."""
  kind = config.quantizer
  cosine = config.get("cosine", False)
  if not isinstance(cosine, bool):
    raise ConfigError(f"config.cosine = {cosine!r}; set it to True or False")
  if cosine and kind not in COSINE_QUANTIZERS:
    raise ConfigError(f"config.cosine = True applies to quantizers {', '.join(COSINE_QUANTIZERS)},"
                      f" not {kind!r}; set it to False")
  estimator = config.get("gradient_estimator", "straight_through")
  _check_choice("gradient_estimator", estimator, q.GRADIENT_ESTIMATORS)
  if estimator != "straight_through" and kind not in ESTIMATOR_QUANTIZERS:
    raise ConfigError(f"config.gradient_estimator = {estimator!r} applies to quantizers"
                      f" {', '.join(ESTIMATOR_QUANTIZERS)}; {kind} uses straight_through, set it to that")
  _check_positive("num_stages", config.get("num_stages", 1))
  levels = config.get("fsq_levels", ())
  if kind in ("fsq", "rfsq") and (not isinstance(levels, (tuple, list)) or not levels
                        or not all(isinstance(n, int) and n >= 2 for n in levels)):
    raise ConfigError(f"config.fsq_levels = {levels!r}; set it to a tuple of integers >= 2,"
                      " e.g. (8, 5, 5, 5)")
  if kind in ("lfq", "rlfq") and config.codebook_dim > 16:
    raise ConfigError(f"config.codebook_dim = {config.codebook_dim} bits per {kind} slice; use at"
                      " most 16 (more num_codebooks for more bits per position)")
  group = config.get("bsq_group_size", 0)
  if not isinstance(group, int) or isinstance(group, bool) or group < 0:
    raise ConfigError(f"config.bsq_group_size = {group!r}; set it to an integer >= 0 (0 = D,"
                      " the exact batch entropy)")
  if kind == "bsq" and ((group or config.codebook_dim) > 16
                        or config.codebook_dim % (group or config.codebook_dim)):
    raise ConfigError(f"config.bsq_group_size = {group} with codebook_dim = {config.codebook_dim}:"
                      " the batch-entropy groups must divide D and have at most 16 dimensions;"
                      " set bsq_group_size to such a divisor (0 = D needs D <= 16)")
  parameterization = config.get("codebook_parameterization", "direct")
  _check_choice("codebook_parameterization", parameterization, CODEBOOK_PARAMETERIZATIONS)
  if parameterization == "simvq" and kind not in ESTIMATOR_QUANTIZERS:
    raise ConfigError(f"config.codebook_parameterization = 'simvq' applies to quantizers with"
                      f" codebooks ({', '.join(ESTIMATOR_QUANTIZERS)}); {kind} has none, set"
                      " it to 'direct'")
  weight = config.get("lfq_entropy_weight", 0.1)
  if not isinstance(weight, (int, float)) or weight < 0:
    raise ConfigError(f"config.lfq_entropy_weight = {weight!r}; set it to a number >= 0")
  temperature = config.get("code_temperature", 0.0)
  if (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
      or not temperature >= 0):
    raise ConfigError(f"config.code_temperature = {temperature!r}; set it to a number >= 0 (0 ="
                      " nearest codes)")
  if temperature > 0 and kind not in STOCHASTIC_QUANTIZERS:
    raise ConfigError(f"config.code_temperature = {temperature} (sampled codes) applies to"
                      f" quantizers {', '.join(STOCHASTIC_QUANTIZERS)}, not {kind!r}; set it to 0")
  _check_choice("code_relaxation", config.get("code_relaxation", "straight_through"),
                q.RELAXATIONS)
  if temperature > 0 and (cosine or estimator != "straight_through" or parameterization != "direct"
                          or tuple(config.get("slice_sizes", ()))):
    raise ConfigError("config.code_temperature > 0 (sampled codes) works with plain codebooks"
                      " only; set cosine = False, gradient_estimator = 'straight_through',"
                      " codebook_parameterization = 'direct', slice_sizes = () or"
                      " code_temperature = 0")
  if kind in FIXED_GRID:
    columns = codes_per_position(kind, config.num_codebooks, config.get("num_stages", 1))
    entries = columns * code_alphabet_size(config)
    if entries > MAX_HISTOGRAM_ENTRIES:
      raise ConfigError(
          f"{kind} with {columns} code columns of {code_alphabet_size(config)} codes"
          f" needs a {entries}-entry code histogram (unigram rate), over {MAX_HISTOGRAM_ENTRIES};"
          " use smaller slices (fewer fsq_levels or bits a slice) and more num_codebooks")


def check_model_fields(config, image_shape: tuple[int, int, int] | None = None
                       ) -> tuple[int, tuple[int, ...]]:
  """Checks the model's fields of a learned-prior config, in `build_model`'s order.

  Args:
    config: a `dvq_jax.vqvae.defaults.learned_prior()`-style ConfigDict.
    image_shape: `(height, width, C)` of the data set; when given, also checks that the latent
      grid fits (see `codes_per_image`).

  Returns:
    `(codebook_dim, slice_sizes)` for `VQVAE`: the D its codebook vectors have (`vector_dim`,
    or len(fsq_levels) for fsq and rfsq) and the dvq slice widths as a tuple (() = equal slices).

  Raises:
    ConfigError: a one-line message naming the bad field and the fix.

  >>> from dvq_jax.vqvae import defaults
  >>> check_model_fields(defaults.learned_prior(), (32, 32, 3))  # D = 8, equal slices
  (8, ())
  """
  if config.quantizer not in QUANTIZERS:
    raise ConfigError(f"config.quantizer = {config.quantizer!r} is unknown; use one of"
                      f" {', '.join(QUANTIZERS)}")
  if config.likelihood not in likelihoods.NAMES:
    raise ConfigError(f"config.likelihood = {config.likelihood!r} is unknown; use one of"
                      f" {', '.join(likelihoods.NAMES)}")
  if config.likelihood in likelihoods.CONTEXT_NAMES and config.get("levels", 1) != 1:
    raise ConfigError(f"config.likelihood = {config.likelihood!r} decodes from one latent grid;"
                      " set config.levels = 1 or use another likelihood")
  model = config.model
  for name, choices in (("upsample", layers.UPSAMPLES), ("dtype", DTYPES),
                        ("codebook_init", q.INIT_SCHEMES), ("architecture", ARCHITECTURES),
                        ("residual_style", layers.RESIDUAL_STYLES),
                        ("input_scaling", INPUT_SCALINGS)):
    if model[name] not in choices:
      raise ConfigError(f"config.model.{name} = {model[name]!r} is unknown; use one of"
                        f" {', '.join(choices)}")
  if model.get("head_dtype", "") not in ("", *DTYPES):
    raise ConfigError(f"config.model.head_dtype = {model.head_dtype!r} is unknown; use one of"
                      f" {', '.join(DTYPES)} or '' (= model.dtype)")
  for name in ("num_codebooks", "codebook_size", "codebook_dim"):
    _check_positive(name, config[name])
  for name, minimum in (("hidden_channels", 2), ("residual_channels", 1), ("num_downsamples", 1),
                        ("num_residual_blocks", 0), ("num_mixtures", 1),
                        ("pre_quantizer_kernel", 1)):
    _check_positive(f"model.{name}", model[name], minimum)
  if not isinstance(model.codebook_init_scale, (int, float)) or model.codebook_init_scale < 0:
    raise ConfigError(f"config.model.codebook_init_scale = {model.codebook_init_scale!r}; set it"
                      f" to a number > 0, or 0 for the scheme's default")
  if not isinstance(config.beta, (int, float)) or config.beta < 0:
    raise ConfigError(f"config.beta = {config.beta!r}; set it to a number >= 0 (project"
                      " default 0.25, official DVQ code 1.0)")
  reduction = config.get("quantizer_loss_reduction", "sum_features")
  if reduction not in LOSS_REDUCTIONS:
    raise ConfigError(f"config.quantizer_loss_reduction = {reduction!r} is unknown; use one of"
                      f" {', '.join(LOSS_REDUCTIONS)}")
  _check_families(config)
  check_level_fields(config)
  equal_width = config.get("equal_width", False)
  if not isinstance(equal_width, bool):
    raise ConfigError(f"config.equal_width = {equal_width!r}; set it to True or False")
  slice_sizes = tuple(config.slice_sizes)
  if slice_sizes and (config.quantizer != "dvq" or len(slice_sizes) != config.num_codebooks
                      or min(slice_sizes) < 1 or max(slice_sizes) != config.codebook_dim):
    raise ConfigError(
        f"config.slice_sizes = {slice_sizes} needs quantizer 'dvq', num_codebooks ="
        f" {config.num_codebooks} entries >= 1 and max = codebook_dim = {config.codebook_dim};"
        " fix it or set it to () for equal slices")
  if config.quantizer in ("fsq", "rfsq"):
    dim = len(config.fsq_levels)
  else:
    dim = vector_dim(config)
  derived = latent_channels(config.quantizer, config.num_codebooks, dim, slice_sizes)
  if model.latent_channels not in (0, derived):
    raise ConfigError(
        f"config.model.latent_channels = {model.latent_channels} but quantizer"
        f" {config.quantizer!r} with L = {config.num_codebooks}, D = {config.codebook_dim},"
        f" equal_width = {equal_width} needs {derived}; set it to {derived} or 0 (derived)"
    )
  if image_shape is not None:
    codes_per_image(config, image_shape)
  return dim, slice_sizes
