"""The RL learning-rate environment over the task family.

A policy trained on one task can learn that task's schedule by heart; trained
over the instance shapes of :class:`lrmeta.tasks.family.Family` (datasets,
widths, batch sizes, budgets of 100 to 400 steps, label noise, training
subsets) it has to read the run's dynamics instead. :func:`family_envs` builds
one :class:`~lrmeta.rl.env.LREnv` per shape. Each splits its budget into the
same number of decisions (a decision every ``num_steps // decisions`` steps),
so all environments share one horizon and one actor, and the trainers cycle
over them (:func:`lrmeta.rl.env.env_cycle`): PPO iteration ``i`` collects
``num_envs`` runs of shape ``i % len(shapes)``, each started by
``reset(key)`` with its own key as the run seed (initialisation and
minibatch order). :func:`training_shapes` draws distinct shapes with the family's one sampler
(:func:`lrmeta.tasks.sample_shapes`), which never returns a held-out shape,
so held-out shapes stay unseen in training.

Use ``features="scale_free"`` (:mod:`lrmeta.controllers.rl_policy`): its
entries are fractions, log ratios and per-window slopes, so runs of different
networks, losses and budgets read in one range.

Deployed, the saved policy config (that of any of the environments: they
differ only in ``steps_per_action`` and ``total_steps``) is rescaled to a
run's budget by :func:`lrmeta.learned.rl_policy.scaled_policy_config`, which
keeps the number of decisions; on a family shape's budget the frozen policy
takes exactly the decisions of that shape's environment.

References:
  Xu, Dai, Kemp, Metz, "Learning an Adaptive Learning Rate Schedule",
  arXiv:1909.09712, 2019. Metz et al., ``learned_optimization`` (tiny-task
  families for meta-training learned optimizers), 2022.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from lrmeta.controllers import checks
from lrmeta.controllers.rl_policy import PolicyConfig
from lrmeta.rl.env import LREnv, LREnvConfig, rollout
from lrmeta.tasks.family import Family
from lrmeta.tasks.protocol import TaskFamily, sample_shapes


def held_out_shapes(family: TaskFamily | None = None) -> frozenset:
  """The held-out shapes of ``family`` (default ``Family()``)."""
  family = Family() if family is None else family
  return frozenset(family.held_out_shapes)


def training_shapes(key: jax.Array, n: int,
                    family: TaskFamily | None = None) -> tuple:
  """``n`` distinct training shapes of ``family`` (default ``Family()``) to
  train a policy on: :func:`lrmeta.tasks.sample_shapes`, deterministic in
  ``key`` and never a held-out shape."""
  checks.positive_int("training_shapes", "n", n)
  return sample_shapes(Family() if family is None else family, key, n)


def family_policy_config(policy: PolicyConfig, num_steps: int,
                         decisions: int) -> PolicyConfig:
  """``policy`` for a budget of ``num_steps`` split into ``decisions``
  windows of ``num_steps // decisions`` steps.

  Raises:
    ValueError: ``decisions`` does not divide ``num_steps``.
  """
  checks.positive_int("family_policy_config", "decisions", decisions)
  if num_steps % decisions:
    raise ValueError(f"decisions={decisions} must divide every budget, got "
                     f"num_steps={num_steps}")
  return dataclasses.replace(policy, steps_per_action=num_steps // decisions,
                             total_steps=num_steps)


def family_envs(shapes: Sequence, env_cfg: LREnvConfig,
                decisions: int, *, family: TaskFamily | None = None,
                allow_held_out: bool = False) -> tuple[LREnv, ...]:
  """One environment per instance shape, all with ``decisions`` decisions.

  Args:
    shapes: shapes of ``family`` (their seeds are ignored; repeated shapes
      give one environment), e.g. from :func:`training_shapes`; their tasks
      must be image-classification :class:`~lrmeta.tasks.Task` s (the
      policy's probe reads the model's class probabilities).
    env_cfg: the environments' configuration; its policy's
      ``steps_per_action`` and ``total_steps`` are replaced per shape by
      :func:`family_policy_config`.
    decisions: decisions per episode (the common horizon); must divide every
      shape's ``num_steps``.
    family: the family that builds the shapes' tasks and whose held-out
      shapes are refused (default ``Family()``).
    allow_held_out: build environments for held-out shapes too (to evaluate
      a policy on them, never to train it).

  Returns:
    A tuple of :class:`LREnv`, in the order of first appearance of the
    shapes, to pass to :func:`lrmeta.rl.train_ppo` or
    :func:`lrmeta.rl.rollout`.

  Raises:
    ValueError: no shapes, a held-out shape (unless ``allow_held_out``), or
      ``decisions`` does not divide a budget.
  """
  checks.positive_int("family_envs", "decisions", decisions)
  family = Family() if family is None else family
  unique = list(dict.fromkeys(inst.shape for inst in shapes))
  if not unique:
    raise ValueError("family_envs: at least one shape is needed")
  if not allow_held_out:
    held = held_out_shapes(family)
    bad = [s.name for s in unique if s in held]
    if bad:
      raise ValueError(f"family_envs: held-out shapes are not for training: "
                       f"{bad}")
  pcfgs = [family_policy_config(env_cfg.policy, s.num_steps, decisions)
           for s in unique]
  return tuple(LREnv(family.task(s), dataclasses.replace(env_cfg, policy=p))
               for s, p in zip(unique, pcfgs))


__all__ = ["family_envs", "family_policy_config", "held_out_shapes",
           "training_shapes"]


def greedy_observations(envs: Sequence, actor_params, seeds: int = 4,
                        first_seed: int = 10_000) -> np.ndarray:
  """Observations the greedy policy ``actor_params`` reads at its decisions,
  ``[n, obs_dim]``: ``seeds`` episodes in each environment of ``envs``
  (environment ``i`` uses the keys of ``first_seed + i``)."""
  rows = []
  for i, env in enumerate(envs):
    keys = jax.random.split(jax.random.key(first_seed + i), seeds)
    _, traj = jax.jit(lambda a, k, e=env: rollout(e, a, k))(actor_params,
                                                            keys)
    rows.append(np.asarray(traj["obs"]).reshape(-1, env.obs_dim))
  return np.concatenate(rows)


def observation_quantiles(obs: np.ndarray) -> np.ndarray:
  """``[features, 3]``: 5th percentile, median, 95th percentile of the rows
  of ``obs``."""
  flat = np.asarray(obs, np.float64).reshape(-1, obs.shape[-1])
  return np.percentile(flat, [5, 50, 95], axis=0).T


def late_cut(lr: np.ndarray, at: float = 0.7, tail: float = 0.1
             ) -> np.ndarray:
  """Per run (rows of ``lr``, ``[K, T]`` applied rates): the mean rate over
  the last ``tail`` of the budget over the rate at step ``int(at * T)``. A
  run "makes the late cut" when this is below 1/3."""
  lr = np.atleast_2d(np.asarray(lr, np.float64))
  t = lr.shape[-1]
  start = min(t - 1, int(np.ceil((1 - tail) * t)))
  return lr[:, start:].mean(-1) / np.maximum(lr[:, int(at * t)], 1e-30)
