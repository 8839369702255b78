"""Config files (``get_config()`` -> ConfigDict) and command-line overrides.

A config is named ``path/to/file.py[:variant]``; the file's ``get_config``
receives the variant string (or ``None``). Overrides use the flax/big_vision
form ``--config.a.b=value``; the value is parsed as the type of the existing
field, and an unknown key is an error that names it (with the closest
known keys).

Every mistake in a config raises a :class:`ConfigError` (a ``ValueError``;
the unknown-key and missing-file kinds are also ``KeyError`` /
``FileNotFoundError``) whose message names the key, file or variant at fault;
the command line prints it as one ``error: ...`` line.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import math
import pathlib

import ml_collections


class ConfigError(ValueError):
  """A configuration mistake; the message names the key, file or value."""

  def __str__(self) -> str:  # KeyError would quote the message
    return str(self.args[0]) if self.args else ""


class UnknownKeyError(ConfigError, KeyError):
  """An override names a key the config does not have."""


class ConfigFileError(ConfigError, FileNotFoundError):
  """A config file that does not exist (or defines no ``get_config``)."""


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads ``path/to/file.py[:variant]`` (the config, locked)."""
  path, _, variant = spec.partition(":")
  p = pathlib.Path(path)
  if not p.is_file():
    hint = ""
    if p.parent.is_dir():
      near = difflib.get_close_matches(
          p.name, [q.name for q in p.parent.glob("*.py")], n=1)
      hint = f"; did you mean {str(p.parent / near[0])!r}?" if near else ""
    raise ConfigFileError(f"config file not found: {path}{hint}")
  mod_spec = importlib.util.spec_from_file_location(f"lrmeta_cfg_{p.stem}", p)
  mod = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(mod)
  if not hasattr(mod, "get_config"):
    raise ConfigFileError(f"{path} defines no get_config()")
  cfg = mod.get_config(variant or None)
  if not isinstance(cfg, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config() must return a ConfigDict")
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
    try:
      return int(raw)
    except ValueError:
      raise ValueError(f"expected an integer, got {raw!r}") from None
  if isinstance(like, float):
    try:
      return float(raw)
    except ValueError:
      raise ValueError(f"expected a number, got {raw!r}") from None
  if isinstance(like, (tuple, list)):
    try:
      val = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      if like and all(isinstance(v, str) for v in like):
        return type(like)((raw,))  # a bare string: one entry
      raise ValueError(f"expected a Python tuple literal such as (1, 2) or "
                       f"('a',), got {raw!r}") from None
    if not isinstance(val, (tuple, list)):
      val = (val,)
    return type(like)(val)
  if like is None:
    try:
      return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      return raw
  if isinstance(like, ml_collections.ConfigDict):
    raise ValueError("it is a block of keys, not a value; override its "
                     "fields one by one")
  return raw


def _unknown_key(dotted: str, node, part: str, prefix: str) -> UnknownKeyError:
  known = [f"{prefix}{k}" for k in node.keys()]
  near = difflib.get_close_matches(f"{prefix}{part}", known, n=3, cutoff=0.6)
  hint = (f"; did you mean {' or '.join(repr(k) for k in near)}?" if near
          else f"; known keys here: {sorted(known)}")
  return UnknownKeyError(f"unknown config key {dotted!r}{hint}")


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: list[str]
                    ) -> ml_collections.ConfigDict:
  """Applies ``config.a.b=value`` strings (with or without leading dashes)."""
  for item in overrides:
    key, eq, raw = item.lstrip("-").partition("=")
    if not eq or not key.startswith("config."):
      raise ConfigError(f"override must look like --config.key=value, got "
                        f"{item!r}")
    dotted = key[len("config."):]
    *parents, leaf = dotted.split(".")
    node, prefix = cfg, ""
    for part in parents:
      if part not in node or not isinstance(node[part],
                                            ml_collections.ConfigDict):
        raise _unknown_key(dotted, node, part, prefix)
      node, prefix = node[part], f"{prefix}{part}."
    if leaf not in node:
      raise _unknown_key(dotted, node, leaf, prefix)
    try:
      value = _parse(raw, node[leaf])
    except ValueError as e:
      raise ConfigError(f"bad value for config key {dotted!r}: {e}") from e
    with node.unlocked():
      node[leaf] = value
  return cfg


def get_key(cfg, key: str):
  """``cfg["a"]["b"]`` for ``key="a.b"``."""
  node = cfg
  for part in key.split("."):
    node = node[part]
  return node


def range_text(lo=None, hi=None, *, lo_open: bool = False,
               hi_open: bool = False) -> str:
  """``"> 0"``, ``">= 1"``, ``"in [0, 1)"``... for messages."""
  if lo is not None and hi is not None:
    return (f"in {'(' if lo_open else '['}{lo:g}, {hi:g}"
            f"{')' if hi_open else ']'}")
  if lo is not None:
    return f"{'>' if lo_open else '>='} {lo:g}"
  if hi is not None:
    return f"{'<' if hi_open else '<='} {hi:g}"
  return "a number"


def in_range(value, lo=None, hi=None, *, lo_open: bool = False,
             hi_open: bool = False) -> bool:
  """Whether ``value`` is a finite number within the bounds (NaN is not)."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return False
  if not math.isfinite(value):
    return False
  if lo is not None and not (value > lo if lo_open else value >= lo):
    return False
  if hi is not None and not (value < hi if hi_open else value <= hi):
    return False
  return True


def check_range(cfg, key: str, lo=None, hi=None, *, lo_open: bool = False,
                hi_open: bool = False) -> None:
  """Raises :class:`ConfigError` naming ``key`` unless ``cfg[key]`` is a
  finite number within the bounds (closed unless ``lo_open`` / ``hi_open``):
  ``config key 'train.epochs' must be >= 1, got -1``."""
  value = get_key(cfg, key)
  if not in_range(value, lo, hi, lo_open=lo_open, hi_open=hi_open):
    # A tiny positive lower bound stands for "> 0" to a user who gave <= 0.
    if (lo is not None and 0 < lo <= 1e-6 and not lo_open and
        in_range(value, hi=0)):
      lo, lo_open = 0, True
    raise ConfigError(f"config key {key!r} must be "
                      f"{range_text(lo, hi, lo_open=lo_open, hi_open=hi_open)}"
                      f", got {value!r}")


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
  :func:`lrmeta.experiments.build.build_task`)."""
  t = ml_collections.ConfigDict()
  t.dataset = dataset
  t.model = model
  t.batch_size = 128
  t.num_val = 5000
  t.balanced_val = False  # True: num_val / 10 of every class (MLR-SNet's)
  t.label_noise = 0.0
  t.max_train = 0        # 0: the whole training split
  t.data_seed = 0
  t.data_dir = ""        # "": LRMETA_DATA_DIR / the standard locations
  return t


def ppo_config(num_envs: int, iterations: int, checkpoint_every: int
               ) -> ml_collections.ConfigDict:
  """The ``ppo`` block of the RL configs (read by
  :func:`lrmeta.experiments.rl_loop.train_policy`); the update settings are
  Schulman et al.'s, with a 1e-3 learning rate for the small actors."""
  p = ml_collections.ConfigDict()
  p.num_envs = num_envs
  p.iterations = iterations
  p.epochs = 4
  p.minibatches = 4
  p.learning_rate = 1e-3
  p.ent_coef = 0.01
  p.gamma = 0.99
  p.gae_lambda = 0.95
  p.clip_eps = 0.2
  p.checkpoint_every = checkpoint_every
  return p


def actor_critic_config(num_envs: int, episodes: int
                        ) -> ml_collections.ConfigDict:
  """The ``actor_critic`` block of the RL configs: ``episodes`` batches of
  ``num_envs`` runs (Xu, Qin et al. 2017's actor-critic)."""
  a = ml_collections.ConfigDict()
  a.num_envs = num_envs
  a.episodes = episodes
  a.actor_lr = 1e-3
  a.critic_lr = 3e-3
  a.noise_std = 0.3
  a.gamma = 0.95
  return a


def transfer_section(dataset: str, model: str, batch_size: int, steps: int,
                     lr_grid: tuple[float, ...], num_val: int = 5000, *,
                     max_train: int = 0, tune_seeds: tuple[int, ...] = (100,),
                     test_seeds: tuple[int, ...] = tuple(range(1000, 1010)),
                     baselines: tuple[str, ...] = (), eval_every: int = 0,
                     eval_examples: int = 0, executor: str = "sequential",
                     hidden: tuple[int, ...] = ()
                     ) -> ml_collections.ConfigDict:
  """One transfer section, the schema every ``transfer`` block shares (read
  by :func:`lrmeta.experiments.transfer.transfer_stage`; the keys are
  described there)."""
  t = ml_collections.ConfigDict()
  t.dataset = dataset
  t.model = model
  t.hidden = tuple(hidden)       # an MLP's widths; (): the model's defaults
  t.max_train = max_train        # 0: the whole training split
  t.num_val = num_val
  t.batch_size = batch_size
  t.steps = steps
  t.lr_grid = tuple(lr_grid)
  t.tune_seeds = tuple(tune_seeds)
  t.test_seeds = tuple(test_seeds)
  t.baselines = tuple(baselines)  # (): lrmeta.protocol.DEFAULT_BASELINES
  t.eval_every = eval_every      # 0: one evaluation at the end of a run
  t.eval_examples = eval_examples  # 0: the whole test split
  t.executor = executor          # "sequential" or "population"
  return t


def fashion_mnist_only(c: ml_collections.ConfigDict
                       ) -> ml_collections.ConfigDict:
  """A task-family config made to need Fashion-MNIST only (for a machine
  without CIFAR-10): the family's pooled Fashion-MNIST sources alone, and
  the frozen transfer to the small CNN alone. Changes ``c`` and returns
  it."""
  c.family.sources = tuple(s for s in c.family.sources
                           if s.startswith("fashion_mnist:"))
  c.transfer.tasks = tuple(t for t in c.transfer.tasks
                           if c.transfer[t].dataset == "fashion_mnist")
  return c


def family_transfer_config(variant: str = "") -> ml_collections.ConfigDict:
  """The ``transfer`` block of the task-family configs: controllers trained
  on the family, frozen, on the small CNN on full-size Fashion-MNIST
  (``cnn``) and ResNet-8 on the CIFAR-10 JPEG copy (``cifar``) against
  tuned baselines (read by
  :func:`lrmeta.experiments.transfer.transfer_stage`).

  Variants: ``""`` (GPU-sized), ``"small"`` (2 CPU cores: the CNN 400
  steps of batch 32, 10 paired seeds; ResNet-8 200 steps of batch 32 on
  10,000 images, 5 seeds) and ``"debug"`` (seconds; the small CNN on both).
  """
  c = ml_collections.ConfigDict()
  c.enabled = True
  c.tasks = ("cnn", "cifar")
  grid = (0.025, 0.05, 0.1, 0.2, 0.4)
  c.cnn = transfer_section("fashion_mnist", "small_cnn", 128, 2000, grid)
  c.cifar = transfer_section("cifar10", "resnet8", 128, 4000, grid)
  if variant == "small":
    c.cnn.batch_size, c.cnn.steps, c.cnn.num_val = 32, 400, 2000
    c.cnn.lr_grid = (0.025, 0.05, 0.1, 0.2)
    c.cifar.batch_size, c.cifar.steps = 32, 200
    c.cifar.max_train, c.cifar.num_val = 10000, 1000
    c.cifar.lr_grid = (0.05, 0.1, 0.2)
    c.cifar.test_seeds = tuple(range(1000, 1005))
  elif variant == "debug":
    for t in (c.cnn, c.cifar):
      t.max_train, t.num_val, t.batch_size, t.steps = 1000, 200, 16, 8
      t.lr_grid = (0.1,)
      t.test_seeds = (1000, 1001)
    c.cifar.model = "small_cnn"  # ResNet-8 compiles too slowly for tests
  elif variant:
    raise ValueError(f"unknown transfer variant {variant!r}")
  return c

