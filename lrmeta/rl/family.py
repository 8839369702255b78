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
minibatch order). :func:`training_shapes` draws distinct shapes from
:meth:`Family.sample <lrmeta.tasks.family.Family.sample>` and never returns
the shape of a held-out instance, so held-out shapes stay unseen in training.

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

from lrmeta.controllers import checks
from lrmeta.controllers.rl_policy import PolicyConfig
from lrmeta.rl.env import LREnv, LREnvConfig
from lrmeta.tasks.family import Family, Instance, instance_task


def held_out_shapes(family: Family | None = None) -> frozenset[Instance]:
  """The shapes of ``family``'s held-out instances (default ``Family()``)."""
  family = Family() if family is None else family
  return frozenset(inst.shape for inst in family.held_out())


def _num_training_shapes(family: Family, held: frozenset[Instance]) -> int:
  """How many distinct shapes sampling can return, held-out ones excluded."""
  combos = set(family.combos())
  total = (len(set(family.sources)) * len(combos)
           * len(set(family.batch_sizes)) * len(set(family.label_noise))
           * len(set(family.max_train)))
  sampled = sum(
      1 for h in held
      if (h.dataset, h.pool) in family.sources
      and (h.hidden, h.num_steps) in combos
      and h.batch_size in family.batch_sizes
      and h.label_noise in family.label_noise
      and h.max_train in family.max_train)
  return total - sampled


def training_shapes(key: jax.Array, n: int, family: Family | None = None
                    ) -> tuple[Instance, ...]:
  """``n`` distinct instance shapes to train a policy on.

  The shapes of ``family.sample(key, n)`` in order of first appearance,
  without repeats and without the shape of any held-out instance (a
  held-out instance may share its shape with sampled ones: its run seeds are
  unseen, but its data and network are not); while fewer than ``n`` remain,
  further draws from ``jax.random.fold_in(key, attempt)`` fill the list.

  Args:
    key: PRNG key; the result is deterministic in it.
    n: number of shapes, at most the number the family can produce.
    family: the family (default ``Family()``).

  Returns:
    A tuple of ``n`` shapes (instances with seed 0).
  """
  family = Family() if family is None else family
  checks.positive_int("training_shapes", "n", n)
  held = held_out_shapes(family)
  available = _num_training_shapes(family, held)
  if n > available:
    raise ValueError(f"training_shapes: the family has {available} training "
                     f"shapes, asked for {n}")
  shapes: list[Instance] = []
  attempt = 0
  while len(shapes) < n:
    k = key if attempt == 0 else jax.random.fold_in(key, attempt)
    for inst in family.sample(k, n):
      shape = inst.shape
      if shape not in held and shape not in shapes and len(shapes) < n:
        shapes.append(shape)
    attempt += 1
  return tuple(shapes)


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


def family_envs(shapes: Sequence[Instance], env_cfg: LREnvConfig,
                decisions: int, *, family: Family | None = None,
                allow_held_out: bool = False) -> tuple[LREnv, ...]:
  """One environment per instance shape, all with ``decisions`` decisions.

  Args:
    shapes: family instances (their seeds are ignored; repeated shapes give
      one environment), e.g. from :func:`training_shapes`.
    env_cfg: the environments' configuration; its policy's
      ``steps_per_action`` and ``total_steps`` are replaced per shape by
      :func:`family_policy_config`.
    decisions: decisions per episode (the common horizon); must divide every
      shape's ``num_steps``.
    family: the family whose held-out shapes are refused (default
      ``Family()``).
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
  return tuple(LREnv(instance_task(s), dataclasses.replace(env_cfg, policy=p))
               for s, p in zip(unique, pcfgs))


__all__ = ["family_envs", "family_policy_config", "held_out_shapes",
           "training_shapes"]
