"""A low-dimensional learned schedule: knots over the budget plus loss feedback.

The controller is an Optax transformation that multiplies the updates of any
base optimizer by the rate

.. math::

  \\log \\eta_t = \\log \\eta_{\\mathrm{base}} + s(t / T) + r(f_t), \\qquad
  r(f) = b \\tanh\\big(w_2^\\top \\tanh(W_1 f + b_1) + b_2\\big),

where ``T`` is the run's budget in steps and ``b`` a fixed bound:

* ``s`` is piecewise linear in the log-rate over the budget fraction
  ``u = t / T``, with ``K`` knots (``theta["knots"]``, float32 ``[K]``) at
  ``u_k = k / (K - 1)``; ``t`` counts updates from 0, so the first update
  uses the first knot. Past the budget (``t >= T``) ``u`` is clipped to 1,
  so the last knot's value holds.
* ``r`` is a one-hidden-layer tanh MLP (``theta["feedback"]``) of three
  scale-free features of the minibatch training loss, which arrives as the
  ``value=`` extra argument; ``|r| <= b`` always, so the feedback changes the
  scheduled rate by at most a factor ``e**b`` either way.

The rate is computed as ``lr_base * exp(s + r)`` (not ``exp(log lr_base +
...)``), so that with all knots zero and the MLP's output layer zero it is
``lr_base`` exactly, bitwise in float32, at every step and for any loss.

Features ``f_t`` (each finite and inside ``[-1, 1]``), from the loss ``l_t``
clamped to ``[1e-12, 1e12]`` and with the EMAs started at the first finite
loss (a non-finite loss leaves them unchanged):

1. ``u = min(t, T) / T``, the budget fraction;
2. the slope of log loss per budget, ``T * d_t / 10`` clipped to
   ``[-1, 1]``, where ``d_t`` is a short EMA of the per-step change of
   ``m_t``, itself a short EMA of ``log l_t`` (the second EMA smooths the
   minibatch noise the per-step difference would otherwise carry);
3. ``log(a_t / A_t)`` clipped to ``[-1, 1]``, with ``a_t`` a short and
   ``A_t`` a long EMA of ``l_t``: below 0 while the loss falls, above 0 when
   it rises (a factor ``e`` above the long average saturates it).

Meta-parameters (:func:`init_learned_schedule_params`): knots zero; ``W1``
LeCun-normal (standard deviation ``1 / sqrt(3)``: random so that the
meta-gradient of ``w2`` is not zero at the start), ``b1``, ``w2``, ``b2`` zero.
With 8 knots and 8 hidden units that is 8 + 41 = 49 numbers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers import checks

Theta = Any  # {"knots": [K], "feedback": {"w1", "b1", "w2", "b2"}}

NUM_KNOTS = 8
HIDDEN = 8
NUM_FEATURES = 3
FEATURE_NAMES = ("budget_fraction", "log_loss_slope", "log_loss_ratio")
SHORT_DECAY = 0.9
LONG_DECAY = 0.99
SLOPE_SCALE = 10.0  # log-loss change per budget that saturates feature 2
LOSS_RANGE = (1e-12, 1e12)


class LearnedScheduleState(NamedTuple):
  """State of :func:`learned_schedule_scale`.

  Attributes:
    count: number of updates applied (int32).
    log_loss: short EMA of the log training loss (``m_t``).
    log_loss_slope: short EMA of the per-step change of ``log_loss``
      (``d_t``, per step).
    loss_short: short EMA of the training loss (``a_t``; -1 until the first
      finite loss, a sentinel that keeps the state finite).
    loss_long: long EMA of the training loss (``A_t``; -1 likewise).
    learning_rate: the rate applied at the last update.
  """

  count: jax.Array
  log_loss: jax.Array
  log_loss_slope: jax.Array
  loss_short: jax.Array
  loss_long: jax.Array
  learning_rate: jax.Array


def init_learned_schedule_params(key: jax.Array, num_knots: int = NUM_KNOTS,
                                 hidden: int = HIDDEN) -> Theta:
  """Untrained meta-parameters: the constant base rate.

  Args:
    key: PRNG key (draws ``W1``).
    num_knots: ``K >= 2`` knots of the schedule.
    hidden: hidden width of the feedback MLP.

  Returns:
    ``{"knots": zeros[K], "feedback": {"w1": [3, hidden] LeCun-normal,
    "b1": zeros[hidden], "w2": zeros[hidden], "b2": zeros[]}}``, float32.
  """
  checks.positive_int("init_learned_schedule_params", "num_knots", num_knots)
  checks.positive_int("init_learned_schedule_params", "hidden", hidden)
  if num_knots < 2:
    raise ValueError("init_learned_schedule_params: num_knots must be >= 2, "
                     f"got {num_knots}")
  w1 = jax.random.normal(key, (NUM_FEATURES, hidden), jnp.float32)
  return {"knots": jnp.zeros((num_knots,), jnp.float32),
          "feedback": {"w1": w1 / jnp.sqrt(jnp.float32(NUM_FEATURES)),
                       "b1": jnp.zeros((hidden,), jnp.float32),
                       "w2": jnp.zeros((hidden,), jnp.float32),
                       "b2": jnp.zeros((), jnp.float32)}}


def knot_schedule(knots: jax.Array, count: jax.Array, num_steps: int
                  ) -> jax.Array:
  """``s(min(count, T) / T)``: linear interpolation between the knots.

  The position ``min(count, T) * (K - 1) / T`` is formed from integers, so a
  step that falls on a knot returns that knot's value exactly.
  """
  k = knots.shape[0]
  t = jnp.minimum(jnp.asarray(count, jnp.int32), num_steps)
  pos = (t * (k - 1)).astype(jnp.float32) / num_steps
  i = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, k - 2)
  frac = pos - i.astype(jnp.float32)
  # The convex form returns the end knots exactly at frac 0 and 1.
  return (1.0 - frac) * knots[i] + frac * knots[i + 1]


def feedback_output(feedback: Theta, features: jax.Array, bound: float
                    ) -> jax.Array:
  """``r = bound * tanh(w2 . tanh(W1 f + b1) + b2)``, in ``[-bound, bound]``."""
  h = jnp.tanh(features @ feedback["w1"] + feedback["b1"])
  return bound * jnp.tanh(h @ feedback["w2"] + feedback["b2"])


def loss_features(state: LearnedScheduleState, num_steps: int) -> jax.Array:
  """The features ``[u, slope, ratio]`` of a state whose EMAs include the
  current loss (all zero but ``u`` before the first finite loss)."""
  u = jnp.minimum(state.count, num_steps).astype(jnp.float32) / num_steps
  slope = num_steps * state.log_loss_slope / SLOPE_SCALE
  seen = state.loss_long > 0
  ratio = jnp.where(seen, jnp.log(jnp.where(seen, state.loss_short, 1.0)
                                  / jnp.where(seen, state.loss_long, 1.0)),
                    0.0)
  # Finite by construction: the loss is clamped before any log.
  return jnp.clip(jnp.stack([u, slope, ratio]).astype(jnp.float32), -1.0, 1.0)


def _track(state: LearnedScheduleState, value: Any, short_decay: float,
           long_decay: float) -> LearnedScheduleState:
  """The state's EMAs updated with the loss ``value`` (held if it is not
  finite; started from it if it is the first finite one)."""
  loss = jnp.asarray(value, jnp.float32)
  ok = jnp.isfinite(loss)
  loss = jnp.clip(jnp.where(ok, loss, 1.0), *LOSS_RANGE)
  log_loss = jnp.log(loss)
  first = state.loss_long < 0
  m = short_decay * state.log_loss + (1 - short_decay) * log_loss
  d = (short_decay * state.log_loss_slope
       + (1 - short_decay) * (m - state.log_loss))
  a = short_decay * state.loss_short + (1 - short_decay) * loss
  big_a = long_decay * state.loss_long + (1 - long_decay) * loss
  m, d, a, big_a = (jnp.where(first, start, new) for new, start in (
      (m, log_loss), (d, 0.0), (a, loss), (big_a, loss)))
  keep = lambda new, old: jnp.where(ok, new, old).astype(jnp.float32)
  return state._replace(log_loss=keep(m, state.log_loss),
                        log_loss_slope=keep(d, state.log_loss_slope),
                        loss_short=keep(a, state.loss_short),
                        loss_long=keep(big_a, state.loss_long))


def _check_args(fn: str, num_steps, bound, short_decay, long_decay) -> None:
  checks.positive_int(fn, "num_steps", num_steps)
  checks.positive(fn, "bound", bound)
  checks.non_negative(fn, "bound", bound)
  checks.unit_interval(fn, "short_decay", short_decay)
  checks.unit_interval(fn, "long_decay", long_decay)


def _check_theta(fn: str, theta: Theta) -> None:
  knots = theta["knots"]
  if knots.ndim != 1 or knots.shape[0] < 2:
    raise ValueError(f"{fn}: theta['knots'] must have shape [K] with K >= 2, "
                     f"got {knots.shape}")
  w1 = theta["feedback"]["w1"]
  if w1.ndim != 2 or w1.shape[0] != NUM_FEATURES:
    raise ValueError(f"{fn}: theta['feedback']['w1'] must have shape "
                     f"[{NUM_FEATURES}, hidden], got {w1.shape}")


def learned_schedule_scale(theta: Theta, learning_rate: float,
                           num_steps: int, *, bound: float = 1.0,
                           use_feedback: bool = True,
                           short_decay: float = SHORT_DECAY,
                           long_decay: float = LONG_DECAY
                           ) -> optax.GradientTransformationExtraArgs:
  """Scales updates by the learned schedule's rate ``lr_base * exp(s + r)``.

  Compose after a base optimizer whose learning rate is 1, e.g.
  ``optax.chain(optax.sgd(1.0, momentum=0.9), learned_schedule_scale(...))``
  (that is :func:`learned_schedule_sgd`) or after ``optax.adam(1.0)``. The
  rate used at step ``t`` reads the loss of step ``t`` (``value=``).

  Args:
    theta: meta-parameters (:func:`init_learned_schedule_params`); may be
      traced (meta-gradients and ES perturbations reach every leaf).
    learning_rate: the base rate ``lr_base > 0`` (may be traced).
    num_steps: the budget ``T``, the step at which ``u`` reaches 1.
    bound: ``b > 0``, the largest ``|r|`` (1.0: a factor ``e`` either way).
    use_feedback: add ``r``; when False the rate is the knot schedule alone
      (``theta["feedback"]`` is kept but unused) and ``value=`` is optional.
    short_decay: decay of the short EMAs, in ``[0, 1)``.
    long_decay: decay of the long EMA of the loss, in ``[0, 1)``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state
    :class:`LearnedScheduleState`.

  Raises:
    ValueError: a static number out of its range or a misshapen ``theta``.
    TypeError: at update, ``use_feedback`` without the ``value=`` loss.
  """
  fn = "learned_schedule_scale"
  _check_args(fn, num_steps, bound, short_decay, long_decay)
  checks.positive(fn, "learning_rate", learning_rate)
  _check_theta(fn, theta)
  # Host (numpy) arrays become JAX arrays, which a traced step may index.
  theta = jax.tree.map(jnp.asarray, theta)

  def init_fn(params):
    del params
    zero = jnp.zeros((), jnp.float32)
    return LearnedScheduleState(
        count=jnp.zeros((), jnp.int32), log_loss=zero, log_loss_slope=zero,
        loss_short=-jnp.ones((), jnp.float32),
        loss_long=-jnp.ones((), jnp.float32), learning_rate=zero)

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    if value is None and use_feedback:
      raise TypeError("learned_schedule_scale with feedback needs the "
                      "minibatch loss as the `value=` extra argument")
    if value is not None:
      state = _track(state, value, short_decay, long_decay)
    log_factor = knot_schedule(theta["knots"], state.count, num_steps)
    if use_feedback:
      log_factor = log_factor + feedback_output(
          theta["feedback"], loss_features(state, num_steps), bound)
    lr = (jnp.asarray(learning_rate, jnp.float32)
          * jnp.exp(log_factor)).astype(jnp.float32)
    updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
    return updates, state._replace(count=optax.safe_increment(state.count),
                                   learning_rate=lr)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def learned_schedule_sgd(theta: Theta, learning_rate: float, num_steps: int,
                         momentum: float = 0.9, *, weight_decay: float = 0.0,
                         bound: float = 1.0, use_feedback: bool = True,
                         short_decay: float = SHORT_DECAY,
                         long_decay: float = LONG_DECAY
                         ) -> optax.GradientTransformationExtraArgs:
  """SGD with heavy-ball momentum at the learned schedule's rate.

  .. math::

    b_t = \\mu b_{t-1} + g_t + \\lambda p_t, \\qquad
    p_{t+1} = p_t - \\eta_t b_t,

  with :math:`\\eta_t` from :func:`learned_schedule_scale`. Untrained, it
  is ``optax.sgd(learning_rate, momentum=momentum)`` update for update
  (bitwise) when ``weight_decay`` is 0.

  Args:
    theta, learning_rate, num_steps: see :func:`learned_schedule_scale`.
    momentum: heavy-ball momentum in ``[0, 1)``.
    weight_decay: L2 coefficient ``>= 0`` added to the gradient (0: none).
    bound, use_feedback, short_decay, long_decay: see
      :func:`learned_schedule_scale`.
  """
  fn = "learned_schedule_sgd"
  checks.unit_interval(fn, "momentum", momentum)
  checks.non_negative(fn, "weight_decay", weight_decay)
  decay = ([optax.add_decayed_weights(weight_decay)]
           if not checks.is_static_number(weight_decay) or weight_decay
           else [])
  return optax.chain(
      *decay, optax.trace(decay=momentum), optax.scale(-1.0),
      learned_schedule_scale(theta, learning_rate, num_steps, bound=bound,
                             use_feedback=use_feedback,
                             short_decay=short_decay, long_decay=long_decay))


def learned_schedule_adam(theta: Theta, learning_rate: float,
                          num_steps: int, *, b1: float = 0.9,
                          b2: float = 0.999, eps: float = 1e-8,
                          bound: float = 1.0, use_feedback: bool = True,
                          short_decay: float = SHORT_DECAY,
                          long_decay: float = LONG_DECAY
                          ) -> optax.GradientTransformationExtraArgs:
  """Adam (``optax.scale_by_adam``) at the learned schedule's rate: with
  all knots and the feedback output zero it is ``optax.adam(learning_rate,
  b1, b2, eps)``. Arguments as :func:`learned_schedule_scale`."""
  return optax.chain(
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.scale(-1.0),
      learned_schedule_scale(theta, learning_rate, num_steps, bound=bound,
                             use_feedback=use_feedback,
                             short_decay=short_decay, long_decay=long_decay))


__all__ = ["FEATURE_NAMES", "HIDDEN", "LearnedScheduleState", "NUM_KNOTS",
           "feedback_output", "init_learned_schedule_params", "knot_schedule",
           "learned_schedule_adam", "learned_schedule_scale",
           "learned_schedule_sgd", "loss_features"]
