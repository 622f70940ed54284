"""Parses the `:arg` of `--config=configs/file.py:arg` into named settings (as big_vision does)."""

import ml_collections


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """`"fig4,repeats=3"` -> {fig4: True, repeats: 3}; values take the type of their default.

  >>> parse_arg("small,seed=3", small=False, seed=0).to_dict()
  {'seed': 3, 'small': True}
  """
  settings = ml_collections.ConfigDict(dict(defaults))
  for item in filter(None, (arg or "").split(",")):
    name, _, value = item.partition("=")
    if name not in defaults:
      raise ValueError(f"unknown config argument {name!r}; known: {sorted(defaults)}")
    default = defaults[name]
    if not value:
      settings[name] = True
    elif isinstance(default, bool):
      settings[name] = value.lower() in ("1", "true", "yes")
    else:
      settings[name] = type(default)(value)
  return settings
