"""The outer loop: meta-train a controller's ``theta`` with any estimator.

One :class:`MetaTrainer` holds one or more estimators, anything that
satisfies the :class:`~lrmeta.meta.estimators.Estimator` protocol (e.g. one
per task family: each runs its own vmapped population of inner tasks), an
Optax meta-optimizer (Adam with L2 weight decay by default, MLR-SNet's
choice) and the guards: the meta-gradient is clipped by global norm, and a
step whose averaged meta-gradient is not finite is skipped (reported in
``metrics["skipped"]``) so ``theta`` is never updated with NaN. Members that
diverged are already masked and restarted inside each estimator
(``metrics["diverged"]``).

Everything the run needs to continue lives in :class:`MetaState` (theta,
meta-optimizer state, estimator states including PES accumulators, PRNG key,
step), so :mod:`lrmeta.meta.checkpoint` can save and resume it exactly.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.meta.estimators import Estimator, tree_isfinite

Theta = Any


class MetaState(NamedTuple):
  """Everything the outer loop carries between meta-steps."""

  step: jax.Array  # int32 scalar: meta-steps taken
  theta: Theta
  opt_state: optax.OptState
  estimator_states: tuple
  key: jax.Array


def default_meta_optimizer(learning_rate: float = 1e-3,
                           weight_decay: float = 1e-4
                           ) -> optax.GradientTransformation:
  """Adam with L2 weight decay added to the gradient (``torch.optim.Adam``
  with ``weight_decay``), lr 1e-3 and decay 1e-4 as in MLR-SNet."""
  return optax.chain(optax.add_decayed_weights(weight_decay),
                     optax.adam(learning_rate))


@dataclasses.dataclass(frozen=True)
class MetaTrainer:
  """Estimators + meta-optimizer + guards.

  Attributes:
    estimators: one or more :class:`~lrmeta.meta.estimators.Estimator`;
      their meta-gradients are averaged (an estimator all of whose members
      diverged, ``metrics["num_ok"] == 0``, is left out).
    meta_optimizer: any Optax transformation (default
      :func:`default_meta_optimizer`).
    clip_norm: global-norm clip of the meta-gradient (``None``: no clip).
  """

  estimators: Sequence[Estimator]
  meta_optimizer: optax.GradientTransformation | None = None
  clip_norm: float | None = 1.0

  def __post_init__(self):
    if not self.estimators:
      raise ValueError("MetaTrainer needs at least one estimator")
    object.__setattr__(self, "estimators", tuple(self.estimators))
    for est in self.estimators:
      if not isinstance(est, Estimator):
        raise TypeError(f"{type(est).__name__} is not an Estimator: it needs "
                        "init(theta, key) and estimate(theta, state, key)")
    if self.meta_optimizer is None:
      object.__setattr__(self, "meta_optimizer", default_meta_optimizer())

  def init(self, theta: Theta, key: jax.Array) -> MetaState:
    """Initial meta-state; estimator ``i`` is seeded with ``fold_in(key, i)``."""
    k_est, k_run = jax.random.split(key)
    states = tuple(est.init(theta, jax.random.fold_in(k_est, i))
                   for i, est in enumerate(self.estimators))
    return MetaState(jnp.zeros((), jnp.int32), theta,
                     self.meta_optimizer.init(theta), states, k_run)

  def step(self, state: MetaState) -> tuple[MetaState, dict[str, jax.Array]]:
    """One meta-update (pure; jit it)."""
    key = jax.random.fold_in(state.key, state.step)
    grads, weights, new_states, metrics = [], [], [], {}
    for i, (est, es) in enumerate(zip(self.estimators,
                                      state.estimator_states)):
      g, es, m = est.estimate(state.theta, es, jax.random.fold_in(key, i))
      grads.append(g)
      weights.append((m["num_ok"] > 0).astype(jnp.float32))
      new_states.append(es)
      for k, v in m.items():
        metrics[f"{i}/{k}" if len(self.estimators) > 1 else k] = v
    w = jnp.stack(weights)
    total = jnp.maximum(w.sum(), 1.0)
    grad = jax.tree.map(
        lambda *gs: sum(wi * gi for wi, gi in zip(w, gs)) / total, *grads)
    grad_norm = optax.tree.norm(grad)
    finite = tree_isfinite(grad) & (w.sum() > 0)
    if self.clip_norm is not None:
      scale = jnp.minimum(1.0, self.clip_norm / jnp.maximum(grad_norm, 1e-12))
      grad = jax.tree.map(lambda g: g * scale, grad)
    # Zero the gradient before the optimizer so NaNs never reach its moments.
    safe = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grad)
    updates, opt_state = self.meta_optimizer.update(safe, state.opt_state,
                                                    state.theta)
    theta = optax.apply_updates(state.theta, updates)
    theta = jax.tree.map(lambda a, b: jnp.where(finite, a, b), theta,
                         state.theta)
    opt_state = jax.tree.map(lambda a, b: jnp.where(finite, a, b),
                             opt_state, state.opt_state)
    metrics.update(grad_norm=grad_norm, skipped=~finite)
    return MetaState(state.step + 1, theta, opt_state, tuple(new_states),
                     state.key), metrics


def meta_train(trainer: MetaTrainer, theta: Theta, key: jax.Array,
               num_steps: int, *, checkpointer=None,
               log_every: int = 0,
               callback: Callable[[MetaState, dict], None] | None = None,
               ) -> tuple[MetaState, dict[str, np.ndarray]]:
  """Runs ``num_steps`` meta-steps, resuming from ``checkpointer`` if it has
  a checkpoint.

  Args:
    trainer: estimators, meta-optimizer and guards.
    theta: initial meta-parameters (ignored when resuming).
    key: PRNG key of the whole meta-training run.
    num_steps: total meta-steps (counted from the start, not from a resume).
    checkpointer: a :class:`lrmeta.meta.checkpoint.MetaCheckpointer`; saves
      every ``save_every`` steps and at the end.
    log_every: print metrics every this many steps (0: never).
    callback: called as ``callback(state, metrics)`` after every step.

  Returns:
    ``(final_state, history)`` with one entry per step run in this call.
  """
  state = trainer.init(theta, key)
  if checkpointer is not None:
    restored = checkpointer.restore_latest(state)
    if restored is not None:
      state = restored
  # An estimator that runs on the host (e.g. FamilyES, one compiled program
  # per instance shape) cannot be traced: the outer step then runs eagerly.
  host = any(getattr(est, "host_side", False) for est in trainer.estimators)
  step_fn = trainer.step if host else jax.jit(trainer.step)
  history: dict[str, list] = {}
  t0 = time.perf_counter()
  while int(state.step) < num_steps:
    state, metrics = step_fn(state)
    metrics = jax.device_get(metrics)
    for k, v in metrics.items():
      history.setdefault(k, []).append(np.asarray(v))
    step = int(state.step)
    if checkpointer is not None:
      checkpointer.maybe_save(state)
    if log_every and (step % log_every == 0 or step == num_steps):
      msg = " ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())
      print(f"meta-step {step}/{num_steps} ({time.perf_counter() - t0:.0f}s) "
            f"{msg}", flush=True)
    if callback is not None:
      callback(state, metrics)
  if checkpointer is not None:
    checkpointer.maybe_save(state, force=True)
    checkpointer.wait()
  return state, {k: np.stack(v) for k, v in history.items()}
