"""Differentiable self-adaptive learning rate (after Chen, Wang, Ba, 2022).

Chen et al. diagnose three failures of hypergradient descent (HD): the
training loss often does not fall after the rate changes, the rule degrades
under minibatch noise, and it overfits (tiny training loss, poor validation
accuracy). Their remedy, in the words of the abstract, is a learning rate that
is *parameter specific and internally structured*, adapted by a differentiable
rule that minimises the loss.

What is implemented here, and what is our reading. This module follows the
paper's abstract and OpenReview summary, not its method section, so the exact
equations of the paper are NOT reproduced: it implements the rule the
abstract describes, with every open choice an option:

* Parameter-specific, structured rates. For a parameter tensor ``W`` whose
  last axis is its output axis, the rate of element ``(i, j)`` is

  .. math::

    \\alpha_{ij} = \\exp(s + r_i + c_j),

  a tensor scale ``s`` times a rank-one (input-index x output-index) factor
  (``structure="rank1"``, default). The alternatives are ``"layer"`` (only
  ``s``: one rate per tensor) and ``"element"`` (a free log-rate per
  element). 0- and 1-d tensors (biases, scales) use ``s + c_j``.
* Differentiable adaptation. The log-rates are trained by gradient descent on
  the one-step-lookahead loss, whose derivative is exact and free:
  with ``Delta_{t-1} = alpha_{t-1} * u_{t-1}`` the last applied update,

  .. math::

    \\frac{\\partial L(\\theta_t)}{\\partial \\log \\alpha_{ij}} =
      g_{t,ij} \\Delta_{t-1,ij},

  and the factor gradients are its sums over the other axes. Working in
  log-space keeps every rate positive by construction.
* Robustness to minibatch noise (option ``hyper_b1``/``hyper_b2``): the
  factor gradients are averaged and normalised by Adam moments, so a noisy
  hypergradient moves the log-rates by at most about ``hyper_lr`` per step,
  and a consistent one by exactly that (HD's additive step is instead
  proportional to the raw, noisy ``g_t . u_{t-1}``).
* Guard: rates are clipped to ``[min_lr, max_lr]``; non-finite factor
  updates are discarded. ``clipped``/``num_clipped`` in the state show it.

References:
  Chen, Wang, Ba. Differentiable self-adaptive learning rate.
  arXiv:2210.10290, 2022 (method section not consulted; see above).
  Baydin et al. Online learning rate adaptation with hypergradient descent.
  ICLR 2018 (arXiv:1703.04782).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers import checks
from lrmeta.controllers.rates import (DEFAULT_MAX_LR, DEFAULT_MIN_LR,
                                      count_clipped)

STRUCTURES = ("rank1", "layer", "element")
DEFAULT_HYPER_LR = 1e-2


class SelfAdaptiveState(NamedTuple):
  """State of :func:`scale_by_self_adaptive_lr`.

  Attributes:
    count: int32 number of updates.
    learning_rate: float32 ``[num_leaves]``, the mean rate applied to each
      parameter tensor at the last update (``jax.tree.leaves`` order).
    log_lr: per parameter tensor, a dict of unconstrained log-rate factors
      ``{"scale": (), "row": shape[:-1], "col": shape[-1:]}`` (``"rank1"``),
      ``{"scale": ()}`` (``"layer"``) or ``{"scale": (), "elem": shape}``.
    mu, nu: Adam moments of the factor gradients (same structure).
    clipped: bool ``[num_leaves]``, whether any rate of the tensor was clipped
      (or its factor update was non-finite) at the last step.
    num_clipped: int32, cumulative number of steps at which at least one
      rate was clipped to ``[min_lr, max_lr]`` or a factor update was
      non-finite (a step counts once however many rates it clipped).
    prev_step: the last update this transformation returned.
    base_state: the base optimizer's state.
  """

  count: jax.Array
  learning_rate: jax.Array
  log_lr: list
  mu: list
  nu: list
  clipped: jax.Array
  num_clipped: jax.Array
  prev_step: optax.Updates
  base_state: optax.OptState


def _factors(x: jax.Array, structure: str, log_lr0: jax.Array) -> dict:
  shape = jnp.shape(x)
  out = {"scale": log_lr0.astype(jnp.float32)}
  if structure == "element":
    out["elem"] = jnp.zeros(shape, jnp.float32)
  elif structure == "rank1" and len(shape) >= 1:
    if len(shape) >= 2:
      out["row"] = jnp.zeros(shape[:-1], jnp.float32)
    out["col"] = jnp.zeros(shape[-1:], jnp.float32)
  return out


def _log_rate(f: dict) -> jax.Array:
  """Log-rate of every element (broadcastable to the tensor's shape)."""
  z = f["scale"]
  if "elem" in f:
    z = z + f["elem"]
  if "row" in f:
    z = z + f["row"][..., None]
  if "col" in f:
    z = z + f["col"]
  return z


def _factor_grads(f: dict, h: jax.Array) -> dict:
  """Chain rule from the elementwise d L / d log alpha to each factor."""
  out = {"scale": jnp.sum(h)}
  if "elem" in f:
    out["elem"] = h
  if "row" in f:
    out["row"] = jnp.sum(h, axis=-1)
  if "col" in f:
    out["col"] = jnp.sum(h.reshape(-1, h.shape[-1]), axis=0)
  return out


def _check_args(fn: str, initial_learning_rate, hyper_lr, structure: str,
                hyper_b1, hyper_b2, min_lr, max_lr) -> None:
  """Static checks of the arguments every self-adaptive factory shares."""
  checks.one_of(fn, "structure", structure, STRUCTURES)
  checks.non_negative(fn, "hyper_lr", hyper_lr)
  checks.unit_interval(fn, "hyper_b1", hyper_b1)
  checks.unit_interval(fn, "hyper_b2", hyper_b2)
  checks.rate_bounds(fn, initial_learning_rate, min_lr, max_lr,
                     min_lr_positive=True)


def _factor_adam_step(f, mu_old, nu_old, d, *, hyper_lr, b1, b2, eps, bc1,
                      bc2):
  """One Adam step of a tensor's log-rate factors ``f`` along their
  gradients ``d``: ``(factors, mu, nu, finite)``; a non-finite proposal
  leaves the factors and moments unchanged."""
  mu = jax.tree.map(lambda m, x: b1 * m + (1 - b1) * x, mu_old, d)
  nu = jax.tree.map(lambda v, x: b2 * v + (1 - b2) * x * x, nu_old, d)
  step = jax.tree.map(
      lambda m, v: hyper_lr * (m / bc1) / (jnp.sqrt(v / bc2) + eps), mu, nu)
  proposed = jax.tree.map(lambda a, s: a - s, f, step)
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                              for x in jax.tree.leaves(proposed)]))

  def keep(new, old):
    # A non-finite hypergradient leaves this tensor's factors unchanged.
    return jnp.where(finite, new, old)

  return (jax.tree.map(keep, proposed, f), jax.tree.map(keep, mu, mu_old),
          jax.tree.map(keep, nu, nu_old), finite)


def scale_by_self_adaptive_lr(
    base: optax.GradientTransformation,
    initial_learning_rate: chex.Numeric = 1e-3,
    hyper_lr: chex.Numeric = DEFAULT_HYPER_LR,
    *,
    structure: str = "rank1",
    hyper_b1: float = 0.9,
    hyper_b2: float = 0.99,
    hyper_eps: float = 1e-12,
    min_lr: float = DEFAULT_MIN_LR,
    max_lr: float = DEFAULT_MAX_LR,
) -> optax.GradientTransformationExtraArgs:
  """Structured, parameter-specific rates adapted by their exact hypergradient.

  Each step: ``h = g_t * Delta_{t-1}`` (elementwise ``dL/d log alpha``) is
  reduced to the gradients of the log-rate factors, which take one Adam step
  of size ``hyper_lr``; the new rates multiply the base's unit-rate
  direction: ``updates = alpha_t * u_t``.

  Args:
    base: a transformation giving an update direction at unit rate in Optax's
      sign convention (``optax.sgd(1.0)``, ``optax.adam(1.0)``, ...).
    initial_learning_rate: every rate starts here; a static value must lie
      in ``[min_lr, max_lr]``, a traced one is clipped to it.
    hyper_lr: step of the log-rates, ``>= 0`` (about the relative change of a rate per
      step when the hypergradient is consistent).
    structure: ``"rank1"`` (scale x row x column factors, default),
      ``"layer"`` or ``"element"``; see the module docstring.
    hyper_b1, hyper_b2, hyper_eps: Adam moments of the factor gradients
      (decays in ``[0, 1)``; ``hyper_b1=0`` and ``hyper_b2=0`` give a sign
      step).
    min_lr, max_lr: bounds of every rate, ``0 < min_lr < max_lr``.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Raises:
    ValueError: an unknown ``structure``, or a static number out of its
      range (traced values are not checked).

  References:
    Chen, Wang, Ba. Differentiable self-adaptive learning rate.
    arXiv:2210.10290 (2022); our reading of its abstract, see module doc.
  """
  _check_args("scale_by_self_adaptive_lr", initial_learning_rate, hyper_lr,
              structure, hyper_b1, hyper_b2, min_lr, max_lr)
  checks.non_negative("scale_by_self_adaptive_lr", "hyper_eps", hyper_eps)
  base = optax.with_extra_args_support(base)

  def init_fn(params):
    leaves = jax.tree.leaves(params)
    lr0 = jnp.clip(jnp.asarray(initial_learning_rate, jnp.float32),
                   min_lr, max_lr)
    log_lr = [_factors(x, structure, jnp.log(lr0)) for x in leaves]
    zeros = jax.tree.map(jnp.zeros_like, log_lr)
    return SelfAdaptiveState(
        count=jnp.zeros((), jnp.int32),
        learning_rate=jnp.full((len(leaves),), lr0, jnp.float32),
        log_lr=log_lr, mu=zeros, nu=jax.tree.map(jnp.zeros_like, log_lr),
        clipped=jnp.zeros((len(leaves),), jnp.bool_),
        num_clipped=jnp.zeros((), jnp.int32),
        prev_step=jax.tree.map(jnp.zeros_like, params),
        base_state=base.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    count = optax.safe_int32_increment(state.count)
    g = jax.tree.leaves(updates)
    prev = jax.tree.leaves(state.prev_step)
    t = count.astype(jnp.float32)
    bc1 = 1.0 - hyper_b1 ** t
    bc2 = 1.0 - hyper_b2 ** t
    new_f, new_mu, new_nu, bad = [], [], [], []
    for f, mu_old, nu_old, gi, di in zip(state.log_lr, state.mu, state.nu,
                                         g, prev):
      h = gi.astype(jnp.float32) * di.astype(jnp.float32)
      f1, mu, nu, finite = _factor_adam_step(
          f, mu_old, nu_old, _factor_grads(f, h), hyper_lr=hyper_lr,
          b1=hyper_b1, b2=hyper_b2, eps=hyper_eps, bc1=bc1, bc2=bc2)
      new_f.append(f1)
      new_mu.append(mu)
      new_nu.append(nu)
      bad.append(~finite)

    direction, base_state = base.update(updates, state.base_state, params,
                                        **extra_args)
    d_leaves, treedef = jax.tree.flatten(direction)
    out, mean_lr, clipped = [], [], []
    log_min = jnp.log(jnp.asarray(min_lr, jnp.float32))
    log_max = jnp.log(jnp.asarray(max_lr, jnp.float32))
    for f, d, b in zip(new_f, d_leaves, bad):
      z = _log_rate(f)
      zc = jnp.clip(z, log_min, log_max)
      rate = jnp.exp(zc)
      out.append((rate * d.astype(jnp.float32)).astype(d.dtype))
      mean_lr.append(jnp.mean(jnp.broadcast_to(rate, jnp.shape(d))))
      clipped.append(b | jnp.any(zc != z))
    clipped = jnp.stack(clipped)
    step_out = jax.tree.unflatten(treedef, out)
    new_state = SelfAdaptiveState(
        count=count, learning_rate=jnp.stack(mean_lr), log_lr=new_f,
        mu=new_mu, nu=new_nu, clipped=clipped,
        num_clipped=count_clipped(state.num_clipped, clipped),
        prev_step=step_out, base_state=base_state)
    return step_out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def self_adaptive_sgd(initial_learning_rate: chex.Numeric = 1e-3,
                      hyper_lr: chex.Numeric = DEFAULT_HYPER_LR, *,
                      momentum: float | None = None, nesterov: bool = False,
                      structure: str = "rank1", hyper_b1: float = 0.9,
                      hyper_b2: float = 0.99, min_lr: float = DEFAULT_MIN_LR,
                      max_lr: float = DEFAULT_MAX_LR
                      ) -> optax.GradientTransformationExtraArgs:
  """SGD (optionally with momentum) under the self-adaptive learning rate.

  Options as in :func:`scale_by_self_adaptive_lr`.

  References:
    Chen, Wang, Ba. Differentiable self-adaptive learning rate.
    arXiv:2210.10290 (2022).
  """
  _check_args("self_adaptive_sgd", initial_learning_rate, hyper_lr, structure,
              hyper_b1, hyper_b2, min_lr, max_lr)
  checks.unit_interval("self_adaptive_sgd", "momentum", momentum)
  return scale_by_self_adaptive_lr(
      optax.sgd(1.0, momentum=momentum, nesterov=nesterov),
      initial_learning_rate, hyper_lr, structure=structure, hyper_b1=hyper_b1,
      hyper_b2=hyper_b2, min_lr=min_lr, max_lr=max_lr)


def self_adaptive_adam(initial_learning_rate: chex.Numeric = 1e-3,
                       hyper_lr: chex.Numeric = DEFAULT_HYPER_LR, *,
                       b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                       structure: str = "rank1", hyper_b1: float = 0.9,
                       hyper_b2: float = 0.99, min_lr: float = DEFAULT_MIN_LR,
                       max_lr: float = DEFAULT_MAX_LR
                       ) -> optax.GradientTransformationExtraArgs:
  """Adam under the self-adaptive learning rate.

  Options as in :func:`scale_by_self_adaptive_lr`.

  References:
    Chen, Wang, Ba. Differentiable self-adaptive learning rate.
    arXiv:2210.10290 (2022).
  """
  _check_args("self_adaptive_adam", initial_learning_rate, hyper_lr,
              structure, hyper_b1, hyper_b2, min_lr, max_lr)
  checks.unit_interval("self_adaptive_adam", "b1", b1)
  checks.unit_interval("self_adaptive_adam", "b2", b2)
  checks.non_negative("self_adaptive_adam", "eps", eps)
  return scale_by_self_adaptive_lr(
      optax.adam(1.0, b1=b1, b2=b2, eps=eps), initial_learning_rate,
      hyper_lr, structure=structure, hyper_b1=hyper_b1, hyper_b2=hyper_b2,
      min_lr=min_lr, max_lr=max_lr)
