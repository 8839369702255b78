"""The per-key rules of the config check: :data:`RULES`, keyed by dotted key.

A rule is a ``Check``, ``check(key, value)``, that raises
:class:`~lrmeta.experiments.config.ConfigError` naming the key and the value
when the value is not of its kind (a number within bounds, an integer, a
flag, a string, one of a set of choices, a tuple of such). A rule marked
``imports`` reads its choices from a registry (JAX and all) and runs after
the plain ones. :func:`lrmeta.experiments.validate.validate` applies the
table to the keys a config has, then its checks across keys and against the
disk.
"""

from __future__ import annotations

from typing import Any, Callable

from lrmeta.experiments.config import ConfigError, in_range, range_text

Check = Callable[[str, Any], None]


# -- rule kinds ------------------------------------------------------------------

def _imports(check: Check) -> Check:
  """Marks a rule that imports a registry (JAX and all): checked after the
  plain ones, so a bad number is reported without that wait."""
  check.imports = True
  return check


def _fail(key: str, what: str, value) -> None:
  raise ConfigError(f"config key {key!r} must be {what}, got {value!r}")


def number(lo=None, hi=None, *, lo_open: bool = False,
           hi_open: bool = False) -> Check:
  """A finite float (or int) within the bounds."""
  def check(key, value):
    if not in_range(value, lo, hi, lo_open=lo_open, hi_open=hi_open):
      _fail(key, range_text(lo, hi, lo_open=lo_open, hi_open=hi_open), value)
  return check


def integer(lo: int = 1) -> Check:
  """An int >= ``lo``."""
  def check(key, value):
    if isinstance(value, bool) or not isinstance(value, int):
      _fail(key, f"an integer >= {lo}", value)
    if value < lo:
      _fail(key, f">= {lo}", value)
  return check


def flag(key, value) -> None:
  if not isinstance(value, bool):
    _fail(key, "True or False", value)


def nonempty_text(key, value) -> None:
  if not isinstance(value, str) or not value.strip():
    _fail(key, "a non-empty string", value)


def text(key, value) -> None:
  if not isinstance(value, str):
    _fail(key, "a string", value)


def one_of(choices: Callable[[], tuple] | tuple) -> Check:
  """A value out of ``choices`` (or of what a zero-argument callable
  returns, so that registries are imported only when the key is present)."""
  def check(key, value):
    options = tuple(choices() if callable(choices) else choices)
    if value not in options:
      _fail(key, f"one of {options}", value)
  check.imports = callable(choices)
  return check


def sequence(item: Check, *, nonempty: bool = True,
             what: str = "entries") -> Check:
  """A tuple whose entries each pass ``item``."""
  def check(key, value):
    if not isinstance(value, (tuple, list)):
      _fail(key, f"a tuple of {what}", value)
    if nonempty and not value:
      _fail(key, f"a non-empty tuple of {what}", value)
    for i, v in enumerate(value):
      try:
        item(f"{key}[{i}]", v)
      except ConfigError as e:
        raise ConfigError(f"{e} (in {key} = {tuple(value)!r})") from None
  check.imports = getattr(item, "imports", False)
  return check


def increasing(inner: Check) -> Check:
  def check(key, value):
    inner(key, value)
    if any(b <= a for a, b in zip(value, value[1:])):
      _fail(key, "strictly increasing", tuple(value))
  check.imports = getattr(inner, "imports", False)
  return check


# Named kinds, as the table reads them.
RATE = number(0, lo_open=True)                  # > 0
NONNEG = number(0)                              # >= 0
FRACTION = number(0, 1)                         # [0, 1]
MOMENTUM = number(0, 1, hi_open=True)           # [0, 1)
COUNT = integer(1)                              # >= 1
COUNT0 = integer(0)                             # >= 0, 0: all / off
SEED = integer(0)
SEEDS = sequence(SEED, what="integer seeds >= 0")
GRID = sequence(RATE, what="positive learning rates")
WIDTHS = sequence(COUNT, what="positive integers")


def _optimizers():
  from lrmeta.protocol.methods import BASE_OPTIMIZERS  # pylint: disable=import-outside-toplevel
  return BASE_OPTIMIZERS


def _datasets():
  from lrmeta.data import DATASETS  # pylint: disable=import-outside-toplevel
  return DATASETS


def _models():
  from lrmeta.models import MODELS  # pylint: disable=import-outside-toplevel
  return MODELS


def _estimators():
  from lrmeta.meta import ESTIMATORS  # pylint: disable=import-outside-toplevel
  return ESTIMATORS


def _controllers():
  from lrmeta.experiments.family_loop import SETUPS  # pylint: disable=import-outside-toplevel
  return ("mlr_snet",) + tuple(k for k in SETUPS if k != "mlr_snet")


def family_source(key, value) -> None:
  """A ``"dataset:pool"`` family source whose pool divides the image."""
  from lrmeta.experiments.family_loop import parse_source  # pylint: disable=import-outside-toplevel
  from lrmeta.tasks.family import SOURCE_SIDE  # pylint: disable=import-outside-toplevel
  try:
    name, pool = parse_source(value if isinstance(value, str) else "")
  except ValueError:
    _fail(key, "'dataset:pool' strings such as 'fashion_mnist:7'", value)
  if name not in SOURCE_SIDE or SOURCE_SIDE[name] % pool:
    raise ConfigError(f"config key {key!r}: {value!r} needs a dataset of "
                      f"{tuple(SOURCE_SIDE)} and a pool side dividing its "
                      f"image side")
family_source.imports = True


def _candidates():
  from lrmeta.schedules import select  # pylint: disable=import-outside-toplevel
  return tuple(k for k, _ in select.default_candidates(10))


def _features():
  from lrmeta.controllers.rl_policy import FEATURE_SETS  # pylint: disable=import-outside-toplevel
  return tuple(FEATURE_SETS)


@_imports
def baseline_name(key, value) -> None:
  """A baseline schedule, bare or with its options
  (``"wsd(decay_fraction=0.3)"``)."""
  from lrmeta.schedules.baselines import parse_baseline  # pylint: disable=import-outside-toplevel
  try:
    parse_baseline(value if isinstance(value, str) else "")
  except ValueError as e:
    raise ConfigError(f"config key {key!r}: {e}") from None


SCHEDULES = sequence(baseline_name, what="schedule names")


@_imports
def candidates(key, value) -> None:
  """LRBench candidate keys (``select.default_candidates``); () keeps all."""
  if not isinstance(value, (tuple, list)):
    _fail(key, "a tuple of candidate keys", value)
  known = _candidates()
  unknown = [v for v in value if v not in known]
  if unknown:
    raise ConfigError(f"config key {key!r} names unknown candidates "
                      f"{unknown}; known: {list(known)}")


@_imports
def policy_spec(key, value) -> None:
  """An LRBench policy spec string (``"fix(k0=0.01)"``)."""
  nonempty_text(key, value)
  # pylint: disable=import-outside-toplevel
  from lrmeta.schedules import parse_spec, schedule_from_spec
  try:
    schedule_from_spec(parse_spec(value))
  except (ValueError, TypeError, KeyError) as e:  # PolicyError is a ValueError
    msg = " ".join(str(e).split())
    raise ConfigError(f"config key {key!r}: bad policy {value!r}: {msg}"
                      ) from None


def method_list(key, value) -> None:
  """A non-empty tuple of non-empty method strings (each is then built by
  :func:`check_methods`)."""
  if not isinstance(value, (tuple, list)) or not value:
    _fail(key, "a non-empty tuple of method strings", value)
  for method in value:
    if not isinstance(method, str) or not method.strip():
      raise ConfigError(f"config key {key!r} holds an empty method "
                        f"{method!r}; give a schedule name, a policy spec, a "
                        f"controller call or 'ckpt:PATH'")


def section_name(key, value) -> None:
  """A transfer section's name: an identifier (a key of ``transfer``)."""
  if not (isinstance(value, str) and value.isidentifier()
          and value not in ("enabled", "tasks")):
    _fail(key, "names of sections of the 'transfer' block", value)


def _task_rules(prefix: str) -> dict[str, Check]:
  return {f"{prefix}dataset": one_of(_datasets),
          f"{prefix}model": one_of(_models),
          f"{prefix}batch_size": COUNT,
          f"{prefix}num_val": COUNT,
          f"{prefix}balanced_val": flag,
          f"{prefix}label_noise": FRACTION,
          f"{prefix}max_train": COUNT0,       # 0: the whole training split
          f"{prefix}data_seed": SEED}


# -- the table ---------------------------------------------------------------------

RULES: dict[str, Check] = {
    # shared
    "name": nonempty_text,
    "output_dir": nonempty_text,
    "seed": SEED,
    "seeds": SEEDS,
    **_task_rules("task."),
    "optimizer.name": one_of(_optimizers),
    "optimizer.momentum": MOMENTUM,
    "optimizer.weight_decay": NONNEG,
    # train / evaluate
    "learning_rate": RATE,
    "tune_controller": flag,
    "methods": method_list,
    "lr_grid": GRID,
    "baselines": SCHEDULES,
    "train.epochs": RATE,
    "train.eval_every": COUNT,
    "train.eval_examples": COUNT0,            # 0: whole splits
    # select
    "candidates": candidates,
    "selection.budget": COUNT,
    "selection.target": number(hi=1),         # <= 0: the default's accuracy
    "selection.stage_fractions": increasing(sequence(
        number(0, 1, lo_open=True, hi_open=True), nonempty=False,
        what="fractions in (0, 1)")),
    "selection.seeds": SEEDS,
    "selection.verify_seeds": SEEDS,
    "selection.eval_every": COUNT,
    "selection.eval_examples": COUNT,
    "selection.prune_margin": NONNEG,
    "selection.keep_top": COUNT,
    "selection.robust_k": NONNEG,
    "selection.momentum": MOMENTUM,
    "selection.default": policy_spec,
    # meta-train
    "kind": one_of(("task", "family")),
    "controller.name": one_of(_controllers),
    "controller.momentum": MOMENTUM,
    "controller.optimizer": one_of(("sgd", "adam")),  # learned schedule's base
    "controller.base_lr": RATE,
    "controller.num_knots": integer(2),
    "controller.feedback": flag,
    "controller.context": flag,               # learned schedule's context
    "controller.window_fraction": number(0, 1, lo_open=True, hi_open=True),
    "controller.init_from": text,             # "" or "pretrained:NAME"
    "family.sources": sequence(family_source, what="'dataset:pool' strings"),
    "family.num_steps": WIDTHS,
    "family.train_shapes": COUNT,
    "family.shapes_seed": SEED,
    "family.held_out_seeds": COUNT,
    "meta.shapes_per_step": COUNT,
    "meta.perturb": text,                     # "": every parameter
    "meta.eval_every": COUNT,
    "meta.truncate": COUNT0,                  # 0: whole runs
    "meta.val_seeds_per_shape": COUNT0,       # 0: one meta-step's group size
    "meta.cosine_check": flag,
    "meta.fitness_cap": NONNEG,               # 0: no cap
    "test.enabled": flag,
    "test.num_seeds": integer(2),
    "test.num_tune_seeds": COUNT,
    "test.grid_low": RATE,
    "test.grid_points": integer(8),
    "test.momentum": MOMENTUM,
    "controller.hidden": COUNT,
    "controller.gamma": NONNEG,               # 0: from the first loss
    "controller.width": COUNT0,               # 0: hidden // 2
    "meta.steps_per_epoch": COUNT0,           # 0: count `every` along the run
    "meta.meta_train_mode": flag,
    "controller.semantics": one_of(("meta_test", "meta_train")),
    "controller.init": one_of(("torch", "uniform")),
    "meta.estimator": one_of(_estimators),
    "meta.horizon": COUNT,
    "meta.meta_steps": COUNT,
    "meta.num_tasks": COUNT,
    "meta.every": COUNT,
    "meta.window": COUNT,
    "meta.es_pairs": COUNT,
    "meta.es_sigma": RATE,
    "meta.meta_batch_size": COUNT,
    "meta.lr": RATE,
    "meta.weight_decay": NONNEG,
    "meta.clip_norm": NONNEG,                 # 0: no clipping
    "meta.save_every": COUNT,
    "meta.snapshots": flag,
    "test.steps": COUNT,
    "test.seeds": SEEDS,
    "test.schedules": SCHEDULES,
    "test.lr_grid": GRID,
    "test.eval_every": COUNT,
    "test.eval_examples": COUNT0,
    "meta.stages": sequence(text, nonempty=False,
                            what="meta.perturb values, one per stage"),
    "transfer.enabled": flag,
    "transfer.tasks": sequence(section_name, nonempty=False,
                               what="names of transfer sections"),
    # rl-train
    "scope": one_of(("task", "family")),
    "env.mode": one_of(("lrmeta", "xu2019")),
    "xu2019.episodes": COUNT,
    "xu2019.keep_interval": COUNT,
    "xu2019.val_examples": COUNT,
    "xu2019.action_std": RATE,
    "xu2019.clip_low": number(),
    "xu2019.clip_high": number(),
    "xu2019.reward_baseline": one_of(("fixed", "average", "exponential",
                                      "ratio")),
    "xu2019.logprob_of": one_of(("multiplier", "sample")),
    "algo": one_of(("ppo", "actor_critic")),
    "model.features": WIDTHS,
    "model.hidden": COUNT,
    "env.total_steps": COUNT,
    "env.steps_per_action": COUNT,
    "env.features": one_of(_features),
    "env.action": one_of(("discrete", "continuous")),
    "env.factors": sequence(RATE, what="positive factors"),
    "env.max_log_factor": RATE,
    "env.base_schedule": one_of(("constant", "cosine", "wsd")),
    "env.decision_spacing": one_of(("uniform", "densify")),
    "env.hidden": WIDTHS,
    "env.probe_size": COUNT,
    "env.base_lr": RATE,
    "env.momentum": MOMENTUM,
    "env.init_log_lr_range": number(0, 5),
    "env.reward": one_of(("val_loss", "train_loss")),
    "env.shaping": NONNEG,
    "env.final_weight": NONNEG,
    "env.val_batch_size": COUNT,
    "env.final_val_examples": COUNT,
    "env.keep_bias": number(),
    "env.sequential": flag,
    "env.train_label_noise": sequence(
        number(0, 1, lo_open=True, hi_open=True), nonempty=False,
        what="label-noise rates in (0, 1)"),
    "ppo.num_envs": COUNT,
    "ppo.iterations": COUNT,
    "ppo.epochs": COUNT,
    "ppo.minibatches": COUNT,
    "ppo.learning_rate": RATE,
    "ppo.ent_coef": NONNEG,
    "ppo.gamma": FRACTION,
    "ppo.gae_lambda": FRACTION,
    "ppo.clip_eps": RATE,
    "ppo.checkpoint_every": COUNT,
    "actor_critic.num_envs": COUNT,
    "actor_critic.episodes": COUNT,
    "actor_critic.actor_lr": RATE,
    "actor_critic.critic_lr": RATE,
    "actor_critic.noise_std": RATE,
    "actor_critic.gamma": FRACTION,
    "eval.schedules": SCHEDULES,
    "eval.lr_grid": GRID,
    "eval.tune_seeds": SEEDS,
    "eval.test_seeds": SEEDS,
    "eval.num_evals": COUNT,
    "eval.eval_examples": COUNT0,
    "eval.deterministic": flag,
    # rl-train over the task family
    "algos": sequence(one_of(("ppo", "actor_critic", "es")),
                      what="trainers 'ppo', 'actor_critic', 'es'"),
    "env.decisions": COUNT,
    "meta.action": one_of(("discrete", "continuous")),  # the ES actor's head
    "controller.action": one_of(("discrete", "continuous")),
    # scripts/headroom.py (configs/headroom.py)
    "family": nonempty_text,                  # the family's config spec
    "optimizer": one_of(("sgd", "adam")),
    "momentum": MOMENTUM,
    "schedules": SCHEDULES,
    "sources": sequence(family_source, nonempty=False,
                        what="'dataset:pool' strings"),
    "widen.axes": sequence(one_of(("none", "long", "noise", "small_data")),
                           what="widening axes"),
    "widen.steps_scale": RATE,
    "widen.label_noise": FRACTION,
    "widen.max_train": COUNT,
}

# The keys of one transfer section (``transfer.<name>.<key>`` for every
# name in ``transfer.tasks``; :mod:`lrmeta.experiments.transfer`).
TRANSFER_SECTION_RULES: dict[str, Check] = {
    "dataset": one_of(_datasets),
    "model": one_of(_models),
    "max_train": COUNT0,                      # 0: the whole training split
    "num_val": COUNT,
    "batch_size": COUNT,
    "steps": COUNT,
    "lr_grid": GRID,
    "tune_seeds": SEEDS,
    "test_seeds": SEEDS,
    "baselines": sequence(baseline_name, nonempty=False,
                          what="schedule names"),  # (): the defaults
    "eval_every": COUNT0,                     # 0: once, at the end
    "eval_examples": COUNT0,                  # 0: the whole test split
    "executor": one_of(("sequential", "population")),
    "hidden": sequence(COUNT, nonempty=False,
                       what="an MLP's widths"),  # (): the model's defaults
}


__all__ = ["RULES", "TRANSFER_SECTION_RULES", "Check", "method_list"]
