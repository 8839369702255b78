"""The learned schedule conditioned on its run's context.

:mod:`lrmeta.controllers.learned_schedule` sets one shape for every run of a
family. This controller adds what a run can know about itself, a context
vector ``c`` of :data:`NUM_CONTEXT` features, and lets it move the schedule:

.. math::

  \\log \\eta_t = \\log \\eta_{\\mathrm{base}} + s_{k + D c}(t / T) + r(f_t)
  + g(c), \\qquad g(c) = b_c \\tanh(v^\\top c),

where ``s``, ``r`` and ``f_t`` are the learned schedule's (knots, bounded
loss feedback, loss features), ``D`` (``theta["context"]["knots"]``,
``[K, C]``) shifts the knots and ``v`` (``theta["context"]["rate"]``,
``[C]``) scales the whole rate by at most ``e**b_c`` either way.

Context features (each inside ``[-1, 1]``):

1. ``log_budget``: ``log(T / BUDGET_REFERENCE) / log(BUDGET_SPAN)`` clipped
   (-0.5 at 100 steps, 0 at 200, +0.5 at 400), known from the first step;
2. ``log_size``: ``log(n / SIZE_REFERENCE) / log(SIZE_SPAN)`` clipped, ``n``
   the number of entries of the parameters the optimizer is initialised on
   (read in ``init``, so the Optax interface is unchanged; -0.68 for an MLP
   16 on 7x7 images, 970 entries, +0.71 for 64x64 on 14x14, 17,418);
3. ``window_log_loss_change``: over an observation window of the first
   ``W = max(1, round(window_fraction * T))`` updates, the short EMA of the
   log loss at the window's last update minus the log of the run's first
   finite loss (negative while the loss falls; a factor ``e`` saturates
   it). It is 0 during the window (the window runs the schedule with the
   budget context only) and frozen from update ``W`` on.

With ``theta["context"]`` all zero the rate is the learned schedule's
bitwise (``x + 0.0`` is ``x``), so a context schedule warm-started from a
trained learned schedule starts exactly where that one stands.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers import checks
from lrmeta.controllers.learned_schedule import (LONG_DECAY, SHORT_DECAY,
                                                 Theta, _check_args,
                                                 _check_theta, _track,
                                                 feedback_output,
                                                 knot_schedule, loss_features)

CONTEXT_FEATURES = ("log_budget", "log_size", "window_log_loss_change")
NUM_CONTEXT = len(CONTEXT_FEATURES)
BUDGET_REFERENCE = 200.0  # steps at which log_budget is 0
BUDGET_SPAN = 4.0  # budget factor over which log_budget moves by 1
SIZE_REFERENCE = 4000.0  # parameter entries at which log_size is 0
SIZE_SPAN = 8.0  # size factor over which log_size moves by 1
WINDOW_FRACTION = 0.1


class ContextScheduleState(NamedTuple):
  """State of :func:`context_schedule_scale`: the learned schedule's
  (:class:`~lrmeta.controllers.learned_schedule.LearnedScheduleState`'s
  fields) plus

  Attributes:
    size_feature: ``log_size`` of the parameters seen by ``init``.
    first_log_loss: log of the run's first finite loss (0 until then).
    window_change: the window's log-loss change, unclipped (0 until the
      window's last update).
  """

  count: jax.Array
  log_loss: jax.Array
  log_loss_slope: jax.Array
  loss_short: jax.Array
  loss_long: jax.Array
  size_feature: jax.Array
  first_log_loss: jax.Array
  window_change: jax.Array
  learning_rate: jax.Array


def init_context_params(num_knots: int) -> Theta:
  """``{"knots": zeros[K, C], "rate": zeros[C]}``: no effect."""
  checks.positive_int("init_context_params", "num_knots", num_knots)
  return {"knots": jnp.zeros((num_knots, NUM_CONTEXT), jnp.float32),
          "rate": jnp.zeros((NUM_CONTEXT,), jnp.float32)}


def window_steps(num_steps: int, window_fraction: float) -> int:
  """``W = max(1, round(window_fraction * T))`` updates observed."""
  return max(1, int(round(window_fraction * num_steps)))


def budget_feature(num_steps: int) -> float:
  """``log(T / BUDGET_REFERENCE) / log(BUDGET_SPAN)`` clipped to [-1, 1]."""
  x = math.log(num_steps / BUDGET_REFERENCE) / math.log(BUDGET_SPAN)
  return min(1.0, max(-1.0, x))


def size_feature(num_entries: int) -> float:
  """``log(n / SIZE_REFERENCE) / log(SIZE_SPAN)`` clipped to [-1, 1]."""
  x = math.log(max(num_entries, 1) / SIZE_REFERENCE) / math.log(SIZE_SPAN)
  return min(1.0, max(-1.0, x))


def context_features(state: ContextScheduleState, num_steps: int,
                     window: int) -> jax.Array:
  """``c = [log_budget, log_size, window_log_loss_change]`` at the state's
  update (the last 0 before update ``window``)."""
  closed = state.count >= window
  change = jnp.where(closed, jnp.clip(state.window_change, -1.0, 1.0), 0.0)
  return jnp.stack([jnp.float32(budget_feature(num_steps)),
                    state.size_feature, change]).astype(jnp.float32)


def _check_context(fn: str, theta: Theta) -> None:
  _check_theta(fn, theta)
  if "context" not in theta:
    raise ValueError(f"{fn}: theta needs a 'context' entry "
                     "(init_context_params)")
  k = theta["knots"].shape[0]
  d, v = theta["context"]["knots"], theta["context"]["rate"]
  if d.shape != (k, NUM_CONTEXT) or v.shape != (NUM_CONTEXT,):
    raise ValueError(f"{fn}: theta['context'] must hold 'knots' "
                     f"[{k}, {NUM_CONTEXT}] and 'rate' [{NUM_CONTEXT}], got "
                     f"{d.shape} and {v.shape}")


def _observe(state: ContextScheduleState, value: Any, window: int,
             short_decay: float, long_decay: float) -> ContextScheduleState:
  """The loss EMAs updated, the first log loss and the window's change
  recorded."""
  unseen = state.loss_long < 0
  state = _track(state, value, short_decay, long_decay)
  seen = state.loss_long > 0
  first = jnp.where(unseen & seen, state.log_loss, state.first_log_loss)
  change = jnp.where((state.count == window - 1) & seen,
                     state.log_loss - first, state.window_change)
  return state._replace(first_log_loss=first.astype(jnp.float32),
                        window_change=change.astype(jnp.float32))


def context_schedule_scale(theta: Theta, learning_rate: float,
                           num_steps: int, *, bound: float = 1.0,
                           context_bound: float = 1.0,
                           window_fraction: float = WINDOW_FRACTION,
                           use_feedback: bool = True,
                           short_decay: float = SHORT_DECAY,
                           long_decay: float = LONG_DECAY
                           ) -> optax.GradientTransformationExtraArgs:
  """Scales updates by the context schedule's rate.

  Compose after a base optimizer whose learning rate is 1 (as
  :func:`~lrmeta.controllers.learned_schedule.learned_schedule_scale`).

  Args:
    theta: the learned schedule's meta-parameters plus ``"context"``
      (:func:`init_context_params`).
    learning_rate, num_steps, bound, use_feedback, short_decay, long_decay:
      as :func:`~lrmeta.controllers.learned_schedule.learned_schedule_scale`.
    context_bound: ``b_c > 0``, the largest ``|g|``.
    window_fraction: the observation window's share of the budget, in
      ``(0, 1)``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state
    :class:`ContextScheduleState`.

  Raises:
    ValueError: a static number out of its range or a misshapen ``theta``.
    TypeError: at update, no ``value=`` loss (the window needs it).
  """
  fn = "context_schedule_scale"
  _check_args(fn, num_steps, bound, short_decay, long_decay)
  checks.positive(fn, "learning_rate", learning_rate)
  checks.positive(fn, "context_bound", context_bound)
  if not 0.0 < window_fraction < 1.0:
    raise ValueError(f"{fn}: window_fraction must be in (0, 1), got "
                     f"{window_fraction}")
  _check_context(fn, theta)
  theta = jax.tree.map(jnp.asarray, theta)
  window = window_steps(num_steps, window_fraction)

  def init_fn(params):
    entries = sum(int(x.size) for x in jax.tree.leaves(params))
    zero = jnp.zeros((), jnp.float32)
    return ContextScheduleState(
        count=jnp.zeros((), jnp.int32), log_loss=zero, log_loss_slope=zero,
        loss_short=-jnp.ones((), jnp.float32),
        loss_long=-jnp.ones((), jnp.float32),
        size_feature=jnp.float32(size_feature(entries)), first_log_loss=zero,
        window_change=zero, learning_rate=zero)

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    if value is None:
      raise TypeError("context_schedule_scale needs the minibatch loss as "
                      "the `value=` extra argument")
    state = _observe(state, value, window, short_decay, long_decay)
    c = context_features(state, num_steps, window)
    ctx = theta["context"]
    knots = theta["knots"] + ctx["knots"] @ c
    log_factor = knot_schedule(knots, state.count, num_steps)
    if use_feedback:
      log_factor = log_factor + feedback_output(
          theta["feedback"], loss_features(state, num_steps), bound)
    log_factor = log_factor + context_bound * jnp.tanh(ctx["rate"] @ c)
    lr = (jnp.asarray(learning_rate, jnp.float32)
          * jnp.exp(log_factor)).astype(jnp.float32)
    updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
    return updates, state._replace(count=optax.safe_increment(state.count),
                                   learning_rate=lr)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def context_schedule_chain(theta: Theta, learning_rate: float,
                           num_steps: int, *, optimizer: str = "adam",
                           momentum: float = 0.9, **kwargs: Any
                           ) -> optax.GradientTransformationExtraArgs:
  """Adam at optax's defaults (``optimizer="adam"``) or SGD with heavy-ball
  ``momentum`` (``"sgd"``), at the context schedule's rate; ``kwargs`` go
  to :func:`context_schedule_scale`. With ``theta["context"]`` zero it is
  ``learned_schedule_adam`` / ``learned_schedule_sgd`` update for update."""
  if optimizer == "adam":
    base = optax.scale_by_adam()
  elif optimizer == "sgd":
    checks.unit_interval("context_schedule_chain", "momentum", momentum)
    base = optax.trace(decay=momentum)
  else:
    raise ValueError("context_schedule_chain: optimizer must be 'adam' or "
                     f"'sgd', got {optimizer!r}")
  return optax.chain(base, optax.scale(-1.0), context_schedule_scale(
      theta, learning_rate, num_steps, **kwargs))


__all__ = ["BUDGET_REFERENCE", "BUDGET_SPAN", "CONTEXT_FEATURES",
           "ContextScheduleState", "NUM_CONTEXT", "SIZE_REFERENCE", "SIZE_SPAN",
           "WINDOW_FRACTION", "budget_feature", "context_features", "context_schedule_chain",
           "context_schedule_scale", "init_context_params", "size_feature",
           "window_steps"]
