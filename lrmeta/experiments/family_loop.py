"""Meta-training a learned controller on the task family (resumable).

Builds the family and its pool of training shapes from a config's
``family`` section, the controller ``controller.name`` names (any kind of
:mod:`lrmeta.learned` with a family set-up in :data:`SETUPS`), the
whole-run ES estimator :class:`lrmeta.meta.family_es.FamilyES` and the outer
loop. Every ``meta.eval_every`` meta-steps (and before the first and after
the last) the unperturbed ``theta`` is scored on a fixed set of validation
instances (the meta-objective the results report: mean normalised final
validation loss, 1 = the constant reference rate). It runs in the shared
scaffold (:func:`lrmeta.experiments.meta_run.run_meta_training`:
checkpoints under ``<out>/checkpoints/meta``, a rerun resumes, one line
per meta-step in ``meta_metrics.jsonl``). ``meta.stages`` runs it in
stages (:func:`meta_train_staged`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lrmeta import learned, pretrained
from lrmeta.controllers.rl_policy import PolicyConfig
from lrmeta.experiments.config import ConfigError
from lrmeta.experiments.meta_run import run_meta_training
from lrmeta.learned import hypergradient as hd_kind
from lrmeta.learned import learned_schedule as ls_kind
from lrmeta.learned import mlr_snet as mlr_kind
from lrmeta.learned import rl_policy as rl_kind
from lrmeta.meta import MetaTrainer, default_meta_optimizer
from lrmeta.meta.family_es import FamilyES, es_cosine, validation_objective
from lrmeta.rl.family import family_policy_config
from lrmeta.tasks.family import Family, Instance
from lrmeta.tasks.protocol import sample_shapes

# "dataset:pool" strings of the config -> Family.sources entries.


def parse_source(text: str) -> tuple[str, int]:
  """``"fashion_mnist:7"`` -> ``("fashion_mnist", 7)``."""
  name, _, pool = text.partition(":")
  if not pool.isdigit():
    raise ValueError(f"family source {text!r} must read 'dataset:pool', e.g. "
                     f"'fashion_mnist:7'")
  return name, int(pool)


def build_family(cfg) -> Family:
  """The :class:`Family` of ``cfg.family``.

  Its held-out combinations are the widest two-layer network at the
  longest budget and the narrowest one-layer network at the middle budget
  (never sampled in meta-training), as in :class:`Family`'s defaults.
  """
  f = cfg.family
  steps = tuple(sorted(int(t) for t in f.num_steps))
  return Family(sources=tuple(parse_source(s) for s in f.sources),
                num_steps=steps,
                held_out_combos=(((64, 64), steps[-1]),
                                 ((16,), steps[len(steps) // 2])),
                held_out_seeds=int(f.held_out_seeds))


def training_shapes(cfg, family: Family) -> tuple[Instance, ...]:
  """``cfg.family.train_shapes`` distinct training shapes of ``family``
  drawn by :func:`lrmeta.tasks.sample_shapes` with key
  ``cfg.family.shapes_seed`` (the same for every meta-training seed, so the
  seeds differ only in initialisation and ES noise); never a held-out
  shape."""
  return sample_shapes(family, jax.random.key(cfg.family.shapes_seed),
                       int(cfg.family.train_shapes))


# -- controllers ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Setup:
  """How one learned-controller kind is meta-trained on the family.

  Attributes:
    config: ``cfg -> saved-controller config``.
    perturb: ES perturbs these parameter groups of ``theta``, key paths
      with ``/`` between levels (``None``: all).
    tune_base: the controller scales a base rate (its ``learning_rate=``),
      which the held-out protocol tunes like a schedule's peak rate.
  """

  config: Callable[[Any], dict]
  perturb: tuple[str, ...] | None = None
  tune_base: bool = False


def _mlr_config(cfg) -> dict:
  c = cfg.controller
  return mlr_kind.config(hidden=c.hidden, num_classes=10,
                         gamma=c.gamma or None, momentum=c.momentum,
                         weight_decay=0.0, width=c.get("width") or None,
                         semantics=c.get("semantics", "meta_test"),
                         init=c.get("init", "torch"),
                         trained_on="task family")


def _hd_config(cfg) -> dict:
  return hd_kind.config(momentum=cfg.controller.momentum,
                        trained_on="task family")


def _schedule_config(cfg) -> dict:
  c = cfg.controller
  return ls_kind.config(base_lr=c.base_lr, momentum=c.momentum,
                        num_knots=c.num_knots, use_feedback=c.feedback,
                        trained_on="task family",
                        optimizer=c.get("optimizer", "sgd"),
                        context=c.get("context", False),
                        window_fraction=c.get("window_fraction", 0.1))


# The RL actor's settings when a config has no ``env`` section (e.g.
# ``lrmeta meta-train --config configs/family_es.py
# --config.controller.name=rl_policy``).
DEFAULT_RL_ENV = {"decisions": 20, "features": "scale_free",
                  "factors": (0.5, 0.8, 1.0, 1.25, 2.0),
                  "max_log_factor": 0.7, "hidden": (32, 32),
                  "base_schedule": "constant",
                  "probe_size": 64, "val_batch_size": 128, "keep_bias": 1.0}


def _rl_env(cfg) -> dict:
  """The actor's settings: ``cfg.env`` or :data:`DEFAULT_RL_ENV` with the
  controller's base rate and momentum."""
  if "env" in cfg:
    return dict(cfg.env)
  return {**DEFAULT_RL_ENV, "base_lr": cfg.controller.base_lr,
          "momentum": cfg.controller.momentum}


def rl_policy_config(cfg, action: str = "discrete") -> PolicyConfig:
  """The RL policy for the family's shortest budget split into
  ``env.decisions`` windows (deployed on any budget with the same number of
  decisions)."""
  e = _rl_env(cfg)
  shortest = min(int(t) for t in cfg.family.num_steps)
  for steps in cfg.family.num_steps:
    if int(steps) % int(e["decisions"]):
      raise ConfigError(f"config key 'env.decisions' ({e['decisions']}) must "
                        f"divide every budget of 'family.num_steps' "
                        f"{tuple(cfg.family.num_steps)}")
  pcfg = PolicyConfig(steps_per_action=1, total_steps=shortest,
                      features=e["features"], action=action,
                      factors=tuple(e["factors"]),
                      max_log_factor=e["max_log_factor"],
                      probe_size=e["probe_size"], hidden=tuple(e["hidden"]),
                      base_schedule=e.get("base_schedule", "constant"),
                      decision_spacing=e.get("decision_spacing", "uniform"))
  return family_policy_config(pcfg, shortest, int(e["decisions"]))


def rl_saved_config(cfg, action: str | None = None, **extra) -> dict:
  """The saved-controller config of an RL policy trained on the family:
  from ``cfg.env`` when the config has one (``configs/rl_family.py``), else
  the family defaults (scale-free features, the discrete factors, 20
  decisions, rate ``controller.base_lr``). ``action`` (``"discrete"`` or
  ``"continuous"``) defaults to ``controller.action``, else discrete."""
  e = _rl_env(cfg)
  if action is None:
    action = cfg.controller.get("action", "discrete")
  return {"controller": rl_kind.NAME,
          "policy": rl_kind.policy_dict(rl_policy_config(cfg, action)),
          "base_lr": float(e["base_lr"]), "momentum": float(e["momentum"]),
          "val_batch_size": int(e["val_batch_size"]),
          "keep_bias": float(e["keep_bias"]), "trained_on": "task family",
          **extra}


SETUPS: dict[str, Setup] = {
    "mlr_snet": Setup(_mlr_config),
    "hypergradient": Setup(_hd_config),
    "learned_schedule": Setup(_schedule_config, tune_base=True),
    "rl_policy": Setup(rl_saved_config, tune_base=True),
}


def perturbed_keys(cfg) -> tuple[str, ...] | None:
  """``cfg.meta.perturb`` ("" : every parameter) as a tuple of key paths."""
  text = cfg.meta.perturb.strip()
  if not text:
    return SETUPS[cfg.controller.name].perturb
  return tuple(k.strip() for k in text.split(",") if k.strip())


@functools.lru_cache(maxsize=None)
def _optimizer_for_budget(kind: str, config_json: str):
  """``T -> (theta -> transformation)`` of a kind and config, one object
  per (kind, config) so that compiled programs are shared by every
  estimator of the process."""
  controller, config = learned.get(kind), json.loads(config_json)

  def for_budget(num_steps: int):
    return lambda theta: controller.optimizer(theta, config, num_steps)
  return for_budget


def optimizer_for_budget(config: dict):
  """The shared ``T -> (theta -> transformation)`` of a saved config."""
  return _optimizer_for_budget(config["controller"],
                               json.dumps(config, sort_keys=True))


@functools.lru_cache(maxsize=None)
def _signals_for_budget(kind: str, config_json: str):
  controller, config = learned.get(kind), json.loads(config_json)
  return lambda num_steps: controller.signals(config, num_steps)


def signals_for_budget(config: dict):
  """The shared ``T -> signal function`` of a saved config (the signals the
  controller reads in a training loop)."""
  return _signals_for_budget(config["controller"],
                             json.dumps(config, sort_keys=True))


def make_estimator(cfg, config: dict, shapes, *, num_pairs: int | None = None
                   ) -> FamilyES:
  """The :class:`FamilyES` of ``cfg.meta`` on ``shapes``."""
  m = cfg.meta
  return FamilyES(optimizer_for_budget(config), tuple(shapes),
                  num_pairs=int(num_pairs or m.es_pairs), sigma=m.es_sigma,
                  shapes_per_step=m.shapes_per_step,
                  perturb=perturbed_keys(cfg), truncate=m.truncate or None,
                  signals_for_budget=signals_for_budget(config),
                  fitness_cap=m.get("fitness_cap", 0.0) or None)


def warm_start(theta: Any, source: str, config: dict) -> Any:
  """``theta`` with every leaf that the shipped controller ``source``
  (``"pretrained:NAME"``; ``""``: none) has replaced by its value; leaves
  it lacks (e.g. a context entry) keep their initial value.

  Raises:
    ValueError: a source that is not ``pretrained:NAME``, of another kind
      or base optimizer than ``config``, or a leaf whose shape differs.
  """
  if not source:
    return theta
  if not source.startswith(pretrained.PREFIX):
    raise ValueError(f"config key 'controller.init_from' must be "
                     f"'pretrained:NAME' or '', got {source!r}")
  saved = pretrained.load(source[len(pretrained.PREFIX):])
  for key in ("controller", "optimizer"):
    if saved.config.get(key) != config.get(key):
      raise ValueError(f"init_from {source}: its {key} is "
                       f"{saved.config.get(key)!r}, the config's "
                       f"{config.get(key)!r}")

  def merge(init, src, path):
    if isinstance(init, dict):
      return {k: merge(v, src[k], f"{path}/{k}") if k in src else v
              for k, v in init.items()}
    if np.shape(init) != np.shape(src):
      raise ValueError(f"init_from {source}: {path.strip('/')} has shape "
                       f"{np.shape(src)}, the controller {np.shape(init)}")
    return jnp.asarray(src, jnp.float32)
  return merge(theta, saved.theta, "")


# -- the run -------------------------------------------------------------------


def meta_train_family(cfg, out: pathlib.Path, quiet: bool = False, *,
                      theta0: Any = None,
                      shapes: tuple[Instance, ...] | None = None) -> dict:
  """Meta-trains ``cfg.controller`` on the family by whole-run ES, from
  ``theta0`` (default: the kind's initialisation with key ``cfg.seed``;
  pass a theta to continue, e.g. a second stage that perturbs more
  parameters), on ``shapes`` (default: :func:`training_shapes`).

  Returns:
    ``{"config", "theta0", "theta", "trace" (per meta-step; ``val_objective``
    where evaluated), "es_cosine" (at theta0, or None), "shapes",
    "validation", "seconds"}``.
  """
  if shapes is None:
    shapes = training_shapes(cfg, build_family(cfg))
  config = SETUPS[cfg.controller.name].config(cfg)
  kind = learned.get(config["controller"])
  if theta0 is None:
    theta0 = warm_start(kind.init(jax.random.key(cfg.seed), config),
                        cfg.controller.get("init_from", ""), config)
  est = make_estimator(cfg, config, shapes)
  # Validation always scores whole runs, also when ES scores truncations.
  whole = dataclasses.replace(est, truncate=None)
  val = est.validation_instances(cfg.meta.val_seeds_per_shape or None)
  cosine = None
  if cfg.meta.cosine_check:
    cosine = es_cosine(est, theta0, jax.random.key(cfg.seed + 7))
    print(f"  ES signal check at the initial theta: cosine of two "
          f"independent {est.num_pairs}-pair estimates = {cosine:.3f}",
          flush=True)
  trainer = MetaTrainer([est], default_meta_optimizer(
      cfg.meta.lr, cfg.meta.weight_decay), clip_norm=cfg.meta.clip_norm or None)
  total = int(cfg.meta.meta_steps)

  def row(state, metrics):
    step = int(state.step)
    record = {"meta_step": step,
              **{k: float(np.asarray(v)) for k, v in metrics.items()}}
    if step % cfg.meta.eval_every == 0 or step == total:
      record["val_objective"] = validation_objective(
          whole, jax.device_get(state.theta), val)
    return record

  run = run_meta_training(
      trainer, theta0, jax.random.key(cfg.seed + 1), total, out,
      save_every=cfg.meta.save_every, quiet=quiet,
      desc=f"meta-train {cfg.controller.name} (family ES)", row=row,
      postfix=lambda r: {"fitness": f"{r['meta_loss']:.4f}",
                         **({"val": f"{r['val_objective']:.4f}"}
                            if "val_objective" in r else {})},
      first_rows=lambda: [{"meta_step": 0, "val_objective":
                           validation_objective(whole, theta0, val)}])
  return {"config": config, "theta0": theta0,
          "theta": jax.device_get(run["state"].theta),
          "trace": run["trace"], "es_cosine": cosine,
          "shapes": shapes, "validation": val, "seconds": run["seconds"]}


def objective_first_last(trace: list[dict]) -> tuple[float, float]:
  """The validation meta-objective at the first and last evaluation."""
  vals = [r["val_objective"] for r in trace if "val_objective" in r]
  return float(vals[0]), float(vals[-1])


def meta_train_saved(cfg, folder: pathlib.Path, *, theta0: Any = None,
                     quiet: bool = True) -> dict:
  """One meta-training run (no held-out stage) into ``folder``, the
  controller saved under ``folder / "controller"``; returns
  :func:`meta_train_family`'s dict plus ``first`` / ``last`` validation
  meta-objective."""
  folder.mkdir(parents=True, exist_ok=True)
  print(f"== meta-training {folder.name}", flush=True)
  mt = meta_train_family(cfg, folder, quiet=quiet, theta0=theta0)
  learned.save(str(folder / "controller"), mt["theta"], mt["config"])
  first, last = objective_first_last(mt["trace"])
  cos = "" if mt["es_cosine"] is None else f"; es_cosine {mt['es_cosine']:.3f}"
  print(f"   validation meta-objective {first:.4f} -> {last:.4f} "
        f"({mt['seconds']:.0f}s{cos})", flush=True)
  return {**mt, "first": first, "last": last, "dir": str(folder)}


def stage_steps(total: int, stages: int) -> tuple[int, ...]:
  """``total`` meta-steps split over ``stages``: ``total // stages`` each,
  the last stage the rest."""
  return tuple([total // stages] * (stages - 1)
               + [total - (stages - 1) * (total // stages)])


def meta_train_staged(cfg, folder: pathlib.Path, *,
                      quiet: bool = True) -> dict:
  """Meta-training in the stages of ``cfg.meta.stages``: one ``meta.perturb``
  value per stage (e.g. ``("knots", "")``: the knots alone, then every
  parameter), ``meta.meta_steps`` split by :func:`stage_steps`, each stage
  from the theta the previous one ended at, into ``folder / "stage<i>"``
  (its controller saved there, :func:`meta_train_saved`). The ES signal
  check (``meta.cosine_check``) runs in the first stage only.

  Returns:
    The last stage's :func:`meta_train_saved` dict with the first stage's
    ``theta0``, ``first`` and ``es_cosine``, one ``trace`` over all stages
    (meta-steps counted on) and the stages' ``seconds`` summed.
  """
  stages = tuple(cfg.meta.stages)
  if not stages:
    raise ValueError("config key 'meta.stages' is empty: name one "
                     "meta.perturb value per stage, e.g. ('knots', '')")
  runs, done, trace = [], 0, []
  for i, (perturb, steps) in enumerate(
      zip(stages, stage_steps(int(cfg.meta.meta_steps), len(stages)))):
    c = ml_collections.ConfigDict(cfg.to_dict())
    c.meta.perturb, c.meta.meta_steps = perturb, steps
    c.meta.cosine_check = bool(cfg.meta.cosine_check) and i == 0
    run = meta_train_saved(c, folder / f"stage{i + 1}", quiet=quiet,
                           theta0=runs[-1]["theta"] if runs else None)
    trace += [{**r, "meta_step": r["meta_step"] + done}
              for r in run["trace"] if not runs or r["meta_step"] > 0]
    done += steps
    runs.append(run)
  return {**runs[-1], "trace": trace, "first": runs[0]["first"],
          "es_cosine": runs[0]["es_cosine"], "theta0": runs[0]["theta0"],
          "seconds": sum(r["seconds"] for r in runs)}


__all__ = ["DEFAULT_RL_ENV", "SETUPS", "Setup", "build_family", "make_estimator",
           "meta_train_family", "meta_train_saved", "meta_train_staged",
           "warm_start",
           "objective_first_last", "optimizer_for_budget",
           "parse_source", "perturbed_keys", "rl_policy_config",
           "rl_saved_config", "signals_for_budget", "training_shapes"]
