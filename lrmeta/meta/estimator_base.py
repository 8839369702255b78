"""The meta-gradient estimator protocol and the core its estimators share.

:class:`Estimator` is the protocol the outer loop calls, :class:`EstimatorState`
the population state the estimators of :mod:`lrmeta.meta.estimators` carry,
and ``_Estimator`` their configuration and episode bookkeeping: ``num_tasks``
vmapped inner runs, episodes of ``horizon`` steps, ``window`` steps per call,
and the restart of a member whose episode ended or whose last estimate was
not finite. The helpers here select, average and report over the members
that stayed finite (the NaN guard of :mod:`lrmeta.meta.estimators`).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from lrmeta.meta.problem import InnerProblem


Theta = Any


class EstimatorState(NamedTuple):
  """Population state of an estimator.

  Attributes:
    inner: inner runs, leading axis ``[P]`` (``[P, 2N]`` for PES: the
      ``+`` runs of the N pairs, then the ``-`` runs).
    keys: ``[P]`` base keys; episode ``e`` of member ``p`` starts from
      ``fold_in(keys[p], e)``.
    episode: ``[P]`` int32 episodes started so far.
    accum: PES perturbation sums ``[P, N, ...theta]`` (``()`` otherwise).
    diverged: ``[P]`` bool, the member's last estimate was not finite (it
      restarts at the next call).
  """

  inner: Any
  keys: jax.Array
  episode: jax.Array
  accum: Any
  diverged: jax.Array


@runtime_checkable
class Estimator(Protocol):
  """A meta-gradient estimator, as the outer loop uses it.

  :class:`~lrmeta.meta.outer.MetaTrainer` calls only these two methods; both
  are pure and traceable, so ``estimate`` runs under ``jax.jit``. The state
  is a pytree the outer loop carries and checkpoints without reading it.
  """

  def init(self, theta: Theta, key: jax.Array) -> EstimatorState:
    """The estimator's state before the first call.

    Args:
      theta: meta-parameters (any pytree).
      key: PRNG key of the estimator's inner runs.

    Returns:
      The initial :class:`EstimatorState`.
    """

  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    """One meta-gradient estimate.

    Args:
      theta: meta-parameters (any pytree).
      state: the state returned by the previous call (or by ``init``).
      key: PRNG key of this call (unused by deterministic estimators).

    Returns:
      ``(meta_grad, state, metrics)``: ``meta_grad`` has the structure of
      ``theta``; ``metrics`` holds scalars, at least ``"meta_loss"``,
      ``"diverged"`` and ``"num_ok"`` (members in the average; the outer
      loop leaves out an estimator whose ``num_ok`` is 0).
    """


def tree_isfinite(tree: Any) -> jax.Array:
  """True when every floating leaf of ``tree`` is finite."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.result_type(x), jnp.floating)]
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack(leaves))


def _where(pred, a, b):
  """Tree select with a scalar (or leading-axis) predicate."""
  def sel(x, y):
    p = jnp.reshape(pred, jnp.shape(pred) + (1,) * (x.ndim - jnp.ndim(pred)))
    return jnp.where(p, x, y)
  return jax.tree.map(sel, a, b)


def _masked_mean(values: Any, ok: jax.Array) -> tuple[Any, jax.Array]:
  """Mean over the leading axis of the entries where ``ok``; 0 if none."""
  n = jnp.sum(ok)
  denom = jnp.maximum(n, 1).astype(jnp.float32)
  mean = jax.tree.map(
      lambda v: jnp.sum(_where(ok, v, jnp.zeros_like(v)), 0) / denom, values)
  return mean, n


@dataclasses.dataclass(frozen=True)
class _Estimator(abc.ABC):
  """Configuration and episode bookkeeping shared by the estimators here.

  Attributes:
    problem: the inner problem to unroll.
    horizon: inner steps per episode.
    window: inner steps differentiated (or perturbed) per call (``None``:
      ``horizon``, one whole run per call).
    num_tasks: members ``P`` of the vmapped population.
  """

  problem: InnerProblem
  horizon: int
  window: int | None = None
  num_tasks: int = 1

  def __post_init__(self):
    if self.window is None:
      object.__setattr__(self, "window", self.horizon)
    if self.horizon <= 0 or self.window <= 0 or self.num_tasks <= 0:
      raise ValueError(f"horizon, window and num_tasks must be positive, got "
                       f"{self.horizon}, {self.window}, {self.num_tasks}")
    if self.horizon % self.steps_per_call:
      raise ValueError(f"horizon {self.horizon} must be a multiple of the "
                       f"steps per call {self.steps_per_call}")

  @property
  def steps_per_call(self) -> int:
    return self.window

  @property
  def name(self) -> str:
    return type(self).__name__

  def _fresh(self, theta, keys, episode):
    return jax.vmap(lambda k, e: self.problem.init(
        theta, jax.random.fold_in(k, e)))(keys, episode)

  def _restart(self, theta, state: EstimatorState):
    """Restarts members whose episode ended or whose last estimate diverged."""
    steps = jax.vmap(self.problem.step_of)(state.inner)
    done = (steps >= self.horizon) | state.diverged
    episode = state.episode + done.astype(jnp.int32)
    fresh = self._fresh(jax.lax.stop_gradient(theta), state.keys, episode)
    inner = _where(done, fresh, state.inner)
    return inner, episode, done

  def init(self, theta: Theta, key: jax.Array) -> EstimatorState:
    """``num_tasks`` fresh inner runs, seeded from ``split(key)``."""
    keys = jax.random.split(key, self.num_tasks)
    episode = jnp.zeros((self.num_tasks,), jnp.int32)
    return EstimatorState(self._fresh(theta, keys, episode), keys, episode, (),
                          jnp.zeros((self.num_tasks,), bool))

  @abc.abstractmethod
  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    """One meta-gradient estimate (see :meth:`Estimator.estimate`)."""


def _metrics(loss, ok, n_ok, step_metrics):
  mean_loss, _ = _masked_mean(loss, ok)
  out = {"meta_loss": mean_loss, "diverged": jnp.sum(~ok),
         "num_ok": n_ok}
  if isinstance(step_metrics, dict) and "train_loss" in step_metrics:
    out["train_loss"] = jnp.nanmean(step_metrics["train_loss"])
  return out


__all__ = ["Estimator", "EstimatorState", "tree_isfinite"]
