"""The resumable meta-training run behind ``lrmeta meta-train``.

Builds the inner problem (a task trained by MLR-SNet-driven SGD), the
estimator the config names (:func:`lrmeta.meta.make_estimator`) and the
outer loop, and runs it in the shared scaffold
(:func:`lrmeta.experiments.meta_run.run_meta_training`: checkpoints every
``meta.save_every`` meta-steps, a rerun resumes, one line per meta-step in
``meta_metrics.jsonl``); saves theta snapshots at
1/3 and 2/3 of meta-training, or, for the authors' online look-ahead, after
the first and half of the meta-steps (their epochs 1 and 100 of 200); the
paper's meta-test protocol switches between them and the final theta.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from lrmeta import learned
from lrmeta.controllers.mlr_snet import MLRSNetState
from lrmeta.learned import mlr_snet as mlr
from lrmeta.experiments.meta_run import run_meta_training
from lrmeta.meta import (MetaTrainer, TaskProblem, default_meta_optimizer,
                         make_estimator)
from lrmeta.tasks import Task
from lrmeta.train import applied_learning_rate

SNAPSHOT_FRACTIONS = (1 / 3, 2 / 3)  # the paper's meta-test switch points
# The authors' own meta-training saves the net after every epoch and
# publishes those of epochs 1, 100 and 200 of 200 (meta_train.py line 162,
# meta-test/mlr_snet {1,100,200}.pth): snapshots after 1/200 and 1/2 of the
# meta-steps (one look-ahead per epoch), plus the final theta.
ONLINE_SNAPSHOT_FRACTIONS = (1 / 200, 1 / 2)


def snapshot_fractions(cfg) -> tuple[float, ...]:
  """Where along meta-training the snapshots are taken."""
  if cfg.meta.estimator == "online_lookahead":
    return ONLINE_SNAPSHOT_FRACTIONS
  return SNAPSHOT_FRACTIONS


def controller_config(cfg, task: Task) -> dict:
  """The saved-controller config of the MLR-SNet a config meta-trains."""
  return mlr.config(
      hidden=cfg.controller.hidden, num_classes=task.dataset.num_classes,
      width=cfg.controller.get("width") or None,
      semantics=cfg.controller.get("semantics", "meta_test"),
      init=cfg.controller.get("init", "torch"),
      gamma=cfg.controller.gamma, momentum=cfg.optimizer.momentum,
      weight_decay=cfg.optimizer.weight_decay,
      switch_fractions=SNAPSHOT_FRACTIONS if cfg.meta.snapshots else (),
      switch_rule="thirds" if cfg.meta.estimator == "online_lookahead"
      else "fractions",
      trained_on=task.name, meta_estimator=cfg.meta.estimator,
      horizon=int(cfg.meta.horizon))


def num_meta_steps(cfg) -> int:
  """Outer updates: one per ``every`` inner steps for the look-ahead (one
  meta-training run, as in the paper), one per look-ahead point of the run
  for the online look-ahead, ``meta.meta_steps`` otherwise."""
  if cfg.meta.estimator == "lookahead":
    return cfg.meta.horizon // cfg.meta.every
  if cfg.meta.estimator == "online_lookahead":
    spe = cfg.meta.get("steps_per_epoch") or 0
    return sum(1 for t in range(cfg.meta.horizon)
               if ((t % spe if spe else t) + 1) % cfg.meta.every == 0)
  return cfg.meta.meta_steps


def estimator(cfg, problem: TaskProblem):
  """The meta-gradient estimator ``cfg.meta`` describes."""
  m = cfg.meta
  return make_estimator(m.estimator, problem, horizon=m.horizon,
                        window=m.window, num_tasks=m.num_tasks, every=m.every,
                        num_pairs=m.es_pairs, sigma=m.es_sigma,
                        steps_per_epoch=m.get("steps_per_epoch") or None)


def controller_gamma(opt_state) -> jax.Array:
  """The rate bound ``gamma`` an MLR-SNet state in ``opt_state`` holds."""
  found = [x.gamma for x in jax.tree.leaves(
      opt_state, is_leaf=lambda x: isinstance(x, MLRSNetState))
           if isinstance(x, MLRSNetState)]
  return found[0] if found else jnp.asarray(jnp.nan)


def meta_train_controller(cfg, task: Task, out: pathlib.Path,
                          quiet: bool = False) -> dict:
  """Meta-trains MLR-SNet from its default initialisation (resumable).

  Returns:
    ``{"theta0", "theta" (final), "snapshots" (list, may be empty),
    "trace" (per-meta-step metrics), "seconds"}``.
  """
  meta_cfg = controller_config(cfg, task)
  theta0 = mlr.CONTROLLER.init(jax.random.key(cfg.seed), meta_cfg)
  plain = {**meta_cfg, "switch_fractions": []}
  problem = TaskProblem(
      task, lambda th: mlr.CONTROLLER.optimizer(th, plain, cfg.meta.horizon),
      meta_batch_size=cfg.meta.meta_batch_size,
      meta_train_mode=bool(cfg.meta.get("meta_train_mode", False)))
  trainer = MetaTrainer([estimator(cfg, problem)],
                        default_meta_optimizer(cfg.meta.lr,
                                               cfg.meta.weight_decay),
                        clip_norm=cfg.meta.clip_norm or None)
  total = num_meta_steps(cfg)
  fractions = snapshot_fractions(cfg)
  marks: dict[int, list[str]] = {}
  for i, f in enumerate(fractions):  # short runs may put two on one step
    marks.setdefault(max(1, int(f * total)), []).append(f"s{i}")
  snap_dir = out / "checkpoints" / "snapshots"
  inner_lr = jax.jit(jax.vmap(lambda s: applied_learning_rate(s.opt_state)))
  inner_gamma = jax.jit(jax.vmap(lambda s: controller_gamma(s.opt_state)))

  def row(state, metrics):
    step = int(state.step)
    inner = state.estimator_states[0].inner
    if cfg.meta.estimator == "pes":  # [P, 2N] runs: report the first
      inner = jax.tree.map(lambda x: x[:, 0], inner)
    for name in marks.get(step, []):
      learned.save(str(snap_dir / name), jax.device_get(state.theta),
                   {**plain, "meta_step": step})
    return {"meta_step": step,
            **{k: float(np.asarray(v)) for k, v in metrics.items()},
            "inner_lr_last": float(np.mean(inner_lr(inner))),
            "inner_gamma": float(np.mean(inner_gamma(inner)))}

  run = run_meta_training(
      trainer, theta0, jax.random.key(cfg.seed + 1), total, out,
      save_every=cfg.meta.save_every, quiet=quiet,
      desc=f"meta-train ({cfg.meta.estimator})", row=row,
      postfix=lambda r: {"meta_loss": f"{r['meta_loss']:.4f}",
                         "lr": f"{r['inner_lr_last']:.3g}",
                         "diverged": int(r["diverged"])})
  theta = jax.device_get(run["state"].theta)
  snaps = []
  if cfg.meta.snapshots:
    snaps = [learned.load(str(snap_dir / f"s{i}")).theta
             for i in range(len(fractions))] + [theta]
  return {"theta0": theta0, "theta": theta, "snapshots": snaps,
          "trace": run["trace"], "seconds": run["seconds"]}
