"""Config files (``get_config()`` -> ConfigDict) and command-line overrides.

A config is named ``path/to/file.py[:variant]``; the file's ``get_config``
receives the variant string (or ``None``). Overrides use the flax/big_vision
form ``--config.a.b=value``; the value is parsed as the type of the existing
field, and an unknown key is an error that names it.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib

import ml_collections


def load_config(spec: str) -> ml_collections.ConfigDict:
  path, _, variant = spec.partition(":")
  p = pathlib.Path(path)
  if not p.is_file():
    raise FileNotFoundError(f"config file not found: {path}")
  mod_spec = importlib.util.spec_from_file_location(f"lrmeta_cfg_{p.stem}", p)
  mod = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(mod)
  if not hasattr(mod, "get_config"):
    raise AttributeError(f"{path} defines no get_config()")
  cfg = mod.get_config(variant or None)
  if not isinstance(cfg, ml_collections.ConfigDict):
    raise TypeError(f"{path}: get_config() must return a ConfigDict")
  cfg.lock()
  return cfg


def _parse(raw: str, like):
  if isinstance(like, bool):
    if raw.lower() in ("true", "1", "yes"):
      return True
    if raw.lower() in ("false", "0", "no"):
      return False
    raise ValueError(f"expected a boolean, got {raw!r}")
  if isinstance(like, int):
    return int(raw)
  if isinstance(like, float):
    return float(raw)
  if isinstance(like, (tuple, list)):
    val = ast.literal_eval(raw)
    if not isinstance(val, (tuple, list)):
      val = (val,)
    return type(like)(val)
  if like is None:
    try:
      return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      return raw
  return raw


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: list[str]
                    ) -> ml_collections.ConfigDict:
  """Applies ``config.a.b=value`` strings (with or without leading dashes)."""
  for item in overrides:
    key, eq, raw = item.lstrip("-").partition("=")
    if not eq or not key.startswith("config."):
      raise ValueError(f"override must look like --config.key=value, got "
                       f"{item!r}")
    dotted = key[len("config."):]
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
      if part not in node:
        raise KeyError(f"unknown config key {dotted!r} (no {part!r})")
      node = node[part]
    if leaf not in node:
      raise KeyError(f"unknown config key {dotted!r}; known keys here: "
                     f"{sorted(node.keys())}")
    try:
      value = _parse(raw, node[leaf])
    except ValueError as e:
      raise ValueError(f"bad value for config key {dotted!r}: {e}") from e
    with node.unlocked():
      node[leaf] = value
  return cfg


def check_range(cfg, key: str, lo=None, hi=None) -> None:
  """Raises naming ``key`` when ``cfg[key]`` lies outside [lo, hi]."""
  node = cfg
  for part in key.split("."):
    node = node[part]
  if (lo is not None and node < lo) or (hi is not None and node > hi):
    raise ValueError(f"config key {key!r} = {node!r} is out of range "
                     f"[{lo}, {hi}]")


def flatten(cfg) -> dict:
  """``{"a.b.c": value}`` for every leaf of a ConfigDict (or nested dict)."""
  d = cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else cfg
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update({f"{k}.{k2}": v2 for k2, v2 in flatten(v).items()})
    else:
      out[k] = v
  return out


def changed_keys(a, b) -> set[str]:
  """Dotted keys whose values differ between two configs (or exist in one)."""
  fa, fb = flatten(a), flatten(b)
  return {k for k in fa.keys() | fb.keys()
          if k not in fa or k not in fb or fa[k] != fb[k]}


def task_config(dataset: str = "fashion_mnist", model: str = "small_cnn"
                ) -> ml_collections.ConfigDict:
  """The ``task`` block every experiment config shares (read by
  :func:`lrmeta.experiments.train_job.build_task`)."""
  t = ml_collections.ConfigDict()
  t.dataset = dataset
  t.model = model
  t.batch_size = 128
  t.num_val = 5000
  t.label_noise = 0.0
  t.max_train = 0        # 0: the whole training split
  t.data_seed = 0
  t.data_dir = ""        # "": LRMETA_DATA_DIR / the standard locations
  return t
