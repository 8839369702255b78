"""Hypergradient descent (HD) on the learning rate of any Optax base optimizer.

HD (Baydin et al., 2018) treats the learning rate as a parameter and takes a
gradient step on it every step, using the derivative of the current loss with
respect to the rate that produced the previous update. The rule needs only the
previous update direction, so it wraps any base transformation that produces a
direction: SGD gives HD-SGD, SGD with Nesterov momentum gives HD-SGDN, Adam
gives HD-Adam, and any user chain works the same way.

Convention. The base runs at unit learning rate in Optax's sign convention:
its output ``u_t`` is *added* to the parameters, e.g. ``optax.sgd(1.0)``
returns ``-g_t`` and ``optax.adam(1.0)`` returns ``-m_t / (sqrt(v_t) + eps)``
(equivalently ``optax.chain(optax.scale_by_adam(), optax.scale(-1.0))``).
The wrapper applies ``theta_t = theta_{t-1} + alpha_t * u_t``, so the
one-step-lookahead hypergradient is

.. math::

  h_t = \\frac{\\partial L(\\theta_{t-1} + \\alpha u_{t-1})}{\\partial \\alpha}
      = g_t \\cdot u_{t-1}.

References:
  Baydin, Cornish, Martinez Rubio, Schmidt, Wood. Online learning rate
  adaptation with hypergradient descent. ICLR 2018. arXiv:1703.04782.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.controllers import checks
from lrmeta.controllers.rates import (DEFAULT_MAX_LR, DEFAULT_MIN_LR,
                                      clip_rate, count_clipped)

GRANULARITIES = ("global", "per_layer", "per_element")
RULES = ("additive", "multiplicative")

# Defaults of the paper's public code.
DEFAULT_INITIAL_LR = 1e-3
DEFAULT_HYPER_LR_SGD = 1e-3
DEFAULT_HYPER_LR_ADAM = 1e-7
# Multiplicative rule: the step is a fraction of the rate (dimensionless).
DEFAULT_HYPER_LR_MULTIPLICATIVE = 1e-2
_EPS = 1e-12


class HypergradientState(NamedTuple):
  """State of :func:`scale_by_hypergradient`.

  Attributes:
    count: int32 number of updates made.
    learning_rate: the rate(s) applied at the last update, float32: shape
      ``()`` (global), ``[num_leaves]`` (per layer, in ``jax.tree.leaves``
      order) or ``[num_params]`` (per element, the leaves raveled and
      concatenated in that order; see :func:`learning_rate_tree`).
    hypergradient: ``dL/d alpha`` used for the last rate update (same shape as
      ``learning_rate``; zero at the first step).
    clipped: bool, same shape as ``learning_rate``: whether the last rate
      update was clipped to ``[min_lr, max_lr]`` or was non-finite.
    num_clipped: int32, cumulative number of steps at which at least one
      proposed rate was outside ``[min_lr, max_lr]`` or non-finite (a step
      counts once however many rates it clipped).
    prev_update: the base's unit-rate direction ``u_{t-1}`` of the last step.
    base_state: the base optimizer's state.
  """

  count: jax.Array
  learning_rate: jax.Array
  hypergradient: jax.Array
  clipped: jax.Array
  num_clipped: jax.Array
  prev_update: optax.Updates
  base_state: optax.OptState


# -- rate layout --------------------------------------------------------------


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def _rate_shape(granularity: str, leaves: Sequence[jax.Array]) -> tuple:
  if granularity == "global":
    return ()
  if granularity == "per_layer":
    return (len(leaves),)
  if granularity == "per_element":
    return (int(sum(np.size(x) for x in leaves)),)
  raise ValueError(f"granularity must be one of {GRANULARITIES}, "
                   f"got {granularity!r}")


def _per_leaf(rates: jax.Array, leaves: Sequence[jax.Array],
              granularity: str) -> list[jax.Array]:
  """Splits a rate array into one (broadcastable) rate per leaf."""
  if granularity == "global":
    return [rates] * len(leaves)
  if granularity == "per_layer":
    return [rates[i] for i in range(len(leaves))]
  out, offset = [], 0
  for x in leaves:
    n = int(np.size(x))
    out.append(rates[offset:offset + n].reshape(jnp.shape(x)))
    offset += n
  return out


def _reduce(per_leaf_values: Sequence[jax.Array], granularity: str
            ) -> jax.Array:
  """Elementwise per-leaf values -> one value per rate (sum within a rate)."""
  if granularity == "global":
    return sum(jnp.sum(v) for v in per_leaf_values)
  if granularity == "per_layer":
    return jnp.stack([jnp.sum(v) for v in per_leaf_values])
  return jnp.concatenate([jnp.ravel(v) for v in per_leaf_values])


def _check_args(fn: str, initial_learning_rate, hyper_lr, rule: str,
                granularity: str, min_lr, max_lr) -> None:
  """Static checks of the arguments every HD factory shares."""
  checks.one_of(fn, "rule", rule, RULES)
  checks.one_of(fn, "granularity", granularity, GRANULARITIES)
  if hyper_lr is not None:
    checks.non_negative(fn, "hyper_lr", hyper_lr)
  checks.rate_bounds(fn, initial_learning_rate, min_lr, max_lr,
                     min_lr_positive=False)


def learning_rate_tree(state: HypergradientState, params: optax.Params,
                       granularity: str) -> optax.Params:
  """The applied rates as a pytree shaped like ``params`` (for inspection)."""
  leaves, treedef = jax.tree.flatten(params)
  rates = _per_leaf(state.learning_rate, leaves, granularity)
  rates = [jnp.broadcast_to(r, jnp.shape(x)) for r, x in zip(rates, leaves)]
  return jax.tree.unflatten(treedef, rates)


# -- the controller ---------------------------------------------------------------


def scale_by_hypergradient(
    base: optax.GradientTransformation,
    initial_learning_rate: chex.Numeric = DEFAULT_INITIAL_LR,
    hyper_lr: chex.Numeric = DEFAULT_HYPER_LR_SGD,
    *,
    rule: str = "additive",
    granularity: str = "global",
    min_lr: float = DEFAULT_MIN_LR,
    max_lr: float = DEFAULT_MAX_LR,
) -> optax.GradientTransformationExtraArgs:
  """Hypergradient descent on the learning rate of ``base``.

  Every step, with ``g_t`` the incoming gradient and ``u_{t-1}`` the base's
  previous unit-rate output, the rate is updated first and then applied to
  the base's new output ``u_t``:

  .. math::

    h_t &= g_t \\cdot u_{t-1}  \\quad (= \\partial L(\\theta_t) /
        \\partial \\alpha_{t-1}) \\\\
    \\alpha_t &= \\alpha_{t-1} - \\beta h_t \\quad \\text{(additive)} \\\\
    \\alpha_t &= \\alpha_{t-1} \\left(1 - \\beta
        \\frac{h_t}{\\lVert g_t \\rVert \\lVert u_{t-1} \\rVert}\\right)
        \\quad \\text{(multiplicative)} \\\\
    \\text{updates} &= \\alpha_t u_t.

  With ``u = -g`` (plain SGD) the additive rule is the paper's
  ``alpha_t = alpha_{t-1} + beta g_t . g_{t-1}``. The multiplicative rule
  normalises the hypergradient to a cosine similarity, so ``beta`` is a
  relative step (it is the paper's multiplicative variant). Dot products and
  norms are taken over all parameters (``"global"``), within each parameter
  tensor (``"per_layer"``) or per element (``"per_element"``); all rates
  update from the same step's gradient at once.

  Guard: a proposed rate that is NaN keeps the previous rate; one that is
  infinite, negative or outside ``[min_lr, max_lr]`` is clipped to the
  bounds. ``state.clipped`` marks the rates clipped at the last step and
  ``state.num_clipped`` counts the steps with any clip.

  Args:
    base: any transformation giving an update direction at unit learning
      rate in Optax's sign convention (e.g. ``optax.sgd(1.0)``,
      ``optax.sgd(1.0, momentum=0.9, nesterov=True)``, ``optax.adam(1.0)``).
    initial_learning_rate: ``alpha_0`` (every rate starts there); a static
      value must lie in ``[min_lr, max_lr]``, a traced one is clipped to it.
    hyper_lr: ``beta >= 0``, the hypergradient learning rate (paper's code:
      1e-3 for SGD bases, 1e-7 for Adam, with the additive rule).
    rule: ``"additive"`` or ``"multiplicative"``.
    granularity: ``"global"``, ``"per_layer"`` (one rate per parameter
      tensor) or ``"per_element"``.
    min_lr: lower bound of every rate, ``>= 0`` (keep it positive so the
      multiplicative rule can recover).
    max_lr: upper bound of every rate, ``> min_lr``.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; extra args are forwarded to
    ``base``.

  Raises:
    ValueError: an unknown ``rule`` or ``granularity``, or a static number
      out of its range (traced values are not checked).

  References:
    Baydin et al., Online learning rate adaptation with hypergradient
    descent, ICLR 2018 (arXiv:1703.04782).
  """
  _check_args("scale_by_hypergradient", initial_learning_rate, hyper_lr,
              rule, granularity, min_lr, max_lr)
  base = optax.with_extra_args_support(base)

  def init_fn(params):
    leaves = jax.tree.leaves(params)
    shape = _rate_shape(granularity, leaves)
    lr0 = jnp.clip(_f32(initial_learning_rate), min_lr, max_lr)
    return HypergradientState(
        count=jnp.zeros((), jnp.int32),
        learning_rate=jnp.full(shape, lr0, jnp.float32),
        hypergradient=jnp.zeros(shape, jnp.float32),
        clipped=jnp.zeros(shape, jnp.bool_),
        num_clipped=jnp.zeros((), jnp.int32),
        prev_update=jax.tree.map(jnp.zeros_like, params),
        base_state=base.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    g = jax.tree.leaves(updates)
    u_prev = jax.tree.leaves(state.prev_update)
    h = _reduce([_f32(a) * _f32(b) for a, b in zip(g, u_prev)], granularity)
    lr = state.learning_rate
    if rule == "additive":
      proposed = lr - hyper_lr * h
    else:
      g_sq = _reduce([jnp.square(_f32(a)) for a in g], granularity)
      u_sq = _reduce([jnp.square(_f32(b)) for b in u_prev], granularity)
      cos = h / (jnp.sqrt(g_sq * u_sq) + _EPS)
      proposed = lr * (1.0 - hyper_lr * cos)
    lr, clipped = clip_rate(proposed, state.learning_rate, min_lr, max_lr)

    direction, base_state = base.update(updates, state.base_state, params,
                                        **extra_args)
    d_leaves, treedef = jax.tree.flatten(direction)
    rates = _per_leaf(lr, d_leaves, granularity)
    out = [(r * _f32(d)).astype(d.dtype) for r, d in zip(rates, d_leaves)]
    new_state = HypergradientState(
        count=optax.safe_int32_increment(state.count),
        learning_rate=lr,
        hypergradient=h.astype(jnp.float32),
        clipped=clipped,
        num_clipped=count_clipped(state.num_clipped, clipped),
        prev_update=direction,
        base_state=base_state)
    return jax.tree.unflatten(treedef, out), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# -- convenience optimizers (as optax pairs scale_by_adam with adam) ---------------


def hd_sgd(initial_learning_rate: chex.Numeric = DEFAULT_INITIAL_LR,
           hyper_lr: chex.Numeric | None = None, *,
           momentum: float | None = None, nesterov: bool = False,
           rule: str = "additive", granularity: str = "global",
           min_lr: float = DEFAULT_MIN_LR, max_lr: float = DEFAULT_MAX_LR,
           ) -> optax.GradientTransformationExtraArgs:
  """HD-SGD (``momentum=None``), HD-SGD with momentum, or HD-SGDN.

  ``hyper_lr`` defaults to 1e-3 (additive, the paper's code) or 1e-2
  (multiplicative). See :func:`scale_by_hypergradient`.

  References:
    Baydin et al., ICLR 2018 (arXiv:1703.04782).
  """
  _check_args("hd_sgd", initial_learning_rate, hyper_lr, rule, granularity,
              min_lr, max_lr)
  checks.unit_interval("hd_sgd", "momentum", momentum)
  if hyper_lr is None:
    hyper_lr = (DEFAULT_HYPER_LR_SGD if rule == "additive"
                else DEFAULT_HYPER_LR_MULTIPLICATIVE)
  return scale_by_hypergradient(
      optax.sgd(1.0, momentum=momentum, nesterov=nesterov),
      initial_learning_rate, hyper_lr, rule=rule, granularity=granularity,
      min_lr=min_lr, max_lr=max_lr)


def hd_sgdn(initial_learning_rate: chex.Numeric = DEFAULT_INITIAL_LR,
            hyper_lr: chex.Numeric | None = None, *, momentum: float = 0.9,
            rule: str = "additive", granularity: str = "global",
            min_lr: float = DEFAULT_MIN_LR, max_lr: float = DEFAULT_MAX_LR,
            ) -> optax.GradientTransformationExtraArgs:
  """HD-SGDN: :func:`hd_sgd` with Nesterov momentum (default 0.9).

  References:
    Baydin et al., ICLR 2018 (arXiv:1703.04782).
  """
  _check_args("hd_sgdn", initial_learning_rate, hyper_lr, rule, granularity,
              min_lr, max_lr)
  checks.unit_interval("hd_sgdn", "momentum", momentum)
  return hd_sgd(initial_learning_rate, hyper_lr, momentum=momentum,
                nesterov=True, rule=rule, granularity=granularity,
                min_lr=min_lr, max_lr=max_lr)


def hd_adam(initial_learning_rate: chex.Numeric = DEFAULT_INITIAL_LR,
            hyper_lr: chex.Numeric | None = None, *, b1: float = 0.9,
            b2: float = 0.999, eps: float = 1e-8, rule: str = "additive",
            granularity: str = "global", min_lr: float = DEFAULT_MIN_LR,
            max_lr: float = DEFAULT_MAX_LR,
            ) -> optax.GradientTransformationExtraArgs:
  """HD-Adam. ``hyper_lr`` defaults to 1e-7 (additive, paper's code) or 1e-2.

  All rates update together from the same step's hypergradient (the
  reference code's Adam variant updated them sequentially).

  References:
    Baydin et al., ICLR 2018 (arXiv:1703.04782).
  """
  _check_args("hd_adam", initial_learning_rate, hyper_lr, rule, granularity,
              min_lr, max_lr)
  checks.unit_interval("hd_adam", "b1", b1)
  checks.unit_interval("hd_adam", "b2", b2)
  checks.non_negative("hd_adam", "eps", eps)
  if hyper_lr is None:
    hyper_lr = (DEFAULT_HYPER_LR_ADAM if rule == "additive"
                else DEFAULT_HYPER_LR_MULTIPLICATIVE)
  return scale_by_hypergradient(
      optax.adam(1.0, b1=b1, b2=b2, eps=eps), initial_learning_rate,
      hyper_lr, rule=rule, granularity=granularity, min_lr=min_lr,
      max_lr=max_lr)
