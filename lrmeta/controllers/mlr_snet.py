"""MLR-SNet: an LSTM that reads the training loss and outputs the learning rate.

The controller is an Optax transformation that multiplies the updates of any
base optimizer by a rate computed, at every step, by a one-layer LSTM cell
whose input is the current minibatch training loss (the ``value=`` extra
argument) and whose output is bounded by ``gamma`` through a sigmoid:

.. math::

  (h_t, c_t) = \\mathrm{LSTM}_\\theta(\\ell_t, (h_{t-1}, c_{t-1})), \\qquad
  \\eta_t = \\gamma \\, \\sigma(w^\\top h_t + b), \\qquad
  \\gamma = \\frac{\\sqrt{L_0}\\,\\log(L_0 C)}{4\\,C^{1/4}},

with :math:`L_0` the initial training loss and :math:`C` the number of
classes. The LSTM's gate pre-activations are small MLPs of the input and of
the previous hidden state (Linear-ReLU-Linear), and the forget gate is biased
by -1, as in the paper's public code.

Choices the paper leaves open (documented here, used by default):

* ``L0`` is the loss of the first minibatch the controller sees (the paper
  evaluates the whole training set before training); pass ``gamma=`` to use a
  precomputed value (:func:`compute_gamma`) instead. ``gamma`` is taken in
  absolute value, as the paper's meta-test code does, so it stays positive
  when ``L0 * C < 1``.
* Initialisation: weights uniform in [-0.1, 0.1] (the paper's code), biases
  zero (the paper keeps PyTorch's default random biases), so the untrained
  controller starts near ``gamma / 2``.
* Snapshot switching (the paper's meta-test protocol): a tuple of ``theta``
  snapshots and the steps at which to switch to the next one; at each switch
  ``gamma`` is recomputed from the current minibatch loss (the paper again
  uses the whole training set). The LSTM state is carried across switches,
  as in the paper's code.

References:
  Shu, Zhu, Zhao, Meng, Xu, "MLR-SNet: Transferable LR Schedules for
  Heterogeneous Tasks", IEEE TPAMI 2022 (arXiv:2007.14546).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers import checks

Theta = Any  # the controller's meta-parameters: a pytree of float32 arrays

HIDDEN = 50  # the paper's hidden size


class MLRSNetState(NamedTuple):
  """State of :func:`mlr_snet`.

  Attributes:
    count: number of updates applied (int32).
    h: LSTM hidden state ``[hidden]``.
    c: LSTM cell state ``[hidden]``.
    gamma: the rate bound in use (-1 until the first loss is seen when it is
      computed from ``L0``; a sentinel rather than NaN keeps the state
      finite).
    learning_rate: the rate applied at the last update.
  """

  count: jax.Array
  h: jax.Array
  c: jax.Array
  gamma: jax.Array
  learning_rate: jax.Array


def init_mlr_snet_params(key: jax.Array, hidden: int = HIDDEN) -> Theta:
  """Default meta-parameters: weights U(-0.1, 0.1), biases zero.

  Args:
    key: PRNG key.
    hidden: LSTM hidden size (50 in the paper).

  Returns:
    ``{"i2h": {w1, b1, w2, b2}, "h2h": {w1, b1, w2, b2}, "out": {w, b}}``
    where the gate MLPs map 1 -> hidden -> 4*hidden (input) and
    hidden -> hidden -> 4*hidden (recurrence), and ``out`` maps hidden -> 1.
  """
  checks.positive_int("init_mlr_snet_params", "hidden", hidden)
  ks = jax.random.split(key, 5)

  def u(k, shape):
    return jax.random.uniform(k, shape, jnp.float32, -0.1, 0.1)

  z = lambda *s: jnp.zeros(s, jnp.float32)
  return {
      "i2h": {"w1": u(ks[0], (1, hidden)), "b1": z(hidden),
              "w2": u(ks[1], (hidden, 4 * hidden)), "b2": z(4 * hidden)},
      "h2h": {"w1": u(ks[2], (hidden, hidden)), "b1": z(hidden),
              "w2": u(ks[3], (hidden, 4 * hidden)), "b2": z(4 * hidden)},
      "out": {"w": u(ks[4], (hidden, 1)), "b": z(1)},
  }


def compute_gamma(initial_loss: chex.Numeric, num_classes: chex.Numeric
                  ) -> jax.Array:
  """The rate bound ``|sqrt(L0) * log(L0 * C) / C**0.25 / 4|`` of the paper."""
  l0 = jnp.asarray(initial_loss, jnp.float32)
  c = jnp.asarray(num_classes, jnp.float32)
  return jnp.abs(jnp.sqrt(l0) * jnp.log(l0 * c) / c ** 0.25 / 4.0)


def _mlp(p, x):
  return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def mlr_snet_cell(theta: Theta, loss: jax.Array, h: jax.Array, c: jax.Array
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One LSTM step: returns ``(h, c, sigmoid output in (0, 1))``."""
  hidden = h.shape[-1]
  x = jnp.reshape(jnp.asarray(loss, jnp.float32), (1,))
  gates = _mlp(theta["i2h"], x) + _mlp(theta["h2h"], h)
  i, f, o, g = (gates[k * hidden:(k + 1) * hidden] for k in range(4))
  c = jax.nn.sigmoid(f - 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  out = jax.nn.sigmoid(h @ theta["out"]["w"] + theta["out"]["b"])[0]
  return h, c, out


def _hidden_size(theta: Theta) -> int:
  return int(theta["out"]["w"].shape[0])


def _check_args(fn: str, num_classes, gamma, switch_steps) -> None:
  """Static checks of the arguments :func:`mlr_snet` and
  :func:`mlr_snet_sgd` share."""
  checks.positive(fn, "num_classes", num_classes)
  if gamma is not None:
    checks.positive(fn, "gamma", gamma)
  steps = tuple(switch_steps)
  if (not all(checks.is_static_number(s) for s in steps)
      or list(steps) != sorted(set(steps)) or any(s <= 0 for s in steps)):
    raise ValueError(f"{fn}: switch_steps must be increasing positive "
                     f"integers, got {steps}")


def mlr_snet(theta: Theta | Sequence[Theta], *, num_classes: int = 10,
             gamma: float | None = None,
             switch_steps: Sequence[int] = ()
             ) -> optax.GradientTransformationExtraArgs:
  """Scales updates by the MLR-SNet rate computed from the training loss.

  Compose after a base optimizer whose learning rate is 1, e.g.
  ``optax.chain(optax.sgd(1.0, momentum=0.9), mlr_snet(theta))`` (that is
  :func:`mlr_snet_sgd`) or ``optax.chain(optax.adam(1.0), mlr_snet(theta))``.
  The rate used at step ``t`` is computed from the loss of step ``t``, which
  arrives as the ``value=`` extra argument (required).

  Args:
    theta: meta-parameters (:func:`init_mlr_snet_params`), or a sequence of
      ``len(switch_steps) + 1`` snapshots for the paper's meta-test protocol.
    num_classes: ``C > 0`` in the formula for ``gamma``.
    gamma: a fixed rate bound ``> 0``; ``None`` computes it from the first
      loss seen (and recomputes it at every switch step).
    switch_steps: increasing positive steps at which to switch to the next
      snapshot.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state
    :class:`MLRSNetState`.

  Raises:
    ValueError: a static number out of its range, or ``theta`` not matching
      ``switch_steps``.

  References:
    Shu et al., "MLR-SNet: Transferable LR Schedules for Heterogeneous
    Tasks", TPAMI 2022 (arXiv:2007.14546).
  """
  _check_args("mlr_snet", num_classes, gamma, switch_steps)
  switch_steps = tuple(int(s) for s in switch_steps)
  if switch_steps:
    if not isinstance(theta, (list, tuple)) or len(theta) != len(
        switch_steps) + 1:
      raise ValueError("mlr_snet: with switch_steps, theta must be a "
                       "sequence of len(switch_steps) + 1 snapshots")
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *theta)
    hidden = _hidden_size(theta[0])
  else:
    stacked = None
    hidden = _hidden_size(theta)
  boundaries = jnp.asarray(switch_steps, jnp.int32)

  def init_fn(params):
    del params
    g0 = -1.0 if gamma is None else gamma
    return MLRSNetState(count=jnp.zeros((), jnp.int32),
                        h=jnp.zeros((hidden,), jnp.float32),
                        c=jnp.zeros((hidden,), jnp.float32),
                        gamma=jnp.asarray(g0, jnp.float32),
                        learning_rate=jnp.zeros((), jnp.float32))

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    if value is None:
      raise TypeError("mlr_snet needs the minibatch loss as the `value=` "
                      "extra argument")
    loss = jnp.asarray(value, jnp.float32)
    if stacked is None:
      th = theta
      g = state.gamma
    else:
      idx = jnp.sum(state.count >= boundaries)
      th = jax.tree.map(lambda x: x[idx], stacked)
      at_switch = jnp.any(state.count == boundaries)
      g = state.gamma
      if gamma is None:
        g = jnp.where(at_switch, -1.0, g)
    if gamma is None:
      g = jnp.where(g < 0, compute_gamma(loss, num_classes), g)
    h, c, out = mlr_snet_cell(th, loss, state.h, state.c)
    lr = g * out
    updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
    return updates, MLRSNetState(
        count=optax.safe_increment(state.count), h=h, c=c,
        gamma=jnp.asarray(g, jnp.float32),
        learning_rate=jnp.asarray(lr, jnp.float32))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def mlr_snet_sgd(theta: Theta | Sequence[Theta], momentum: float = 0.9, *,
                 weight_decay: float = 5e-4, num_classes: int = 10,
                 gamma: float | None = None,
                 switch_steps: Sequence[int] = ()
                 ) -> optax.GradientTransformationExtraArgs:
  """SGD (PyTorch convention) whose rate is set by MLR-SNet at every step.

  .. math::

    b_t = \\mu b_{t-1} + g_t + \\lambda p_t, \\qquad
    p_{t+1} = p_t - \\eta_t b_t,

  with :math:`\\eta_t` from :func:`mlr_snet`; the momentum buffer does not
  absorb the rate, as in ``torch.optim.SGD`` which the paper uses.

  Args:
    theta: MLR-SNet meta-parameters (or snapshots, see :func:`mlr_snet`).
    momentum: heavy-ball momentum in ``[0, 1)`` (0.9; the paper's
      meta-training code uses 0, its experiments 0.9).
    weight_decay: L2 coefficient ``>= 0`` added to the gradient (5e-4, the
      paper's).
    num_classes, gamma, switch_steps: see :func:`mlr_snet`.

  References:
    Shu et al., "MLR-SNet: Transferable LR Schedules for Heterogeneous
    Tasks", TPAMI 2022 (arXiv:2007.14546).
  """
  _check_args("mlr_snet_sgd", num_classes, gamma, switch_steps)
  checks.unit_interval("mlr_snet_sgd", "momentum", momentum)
  checks.non_negative("mlr_snet_sgd", "weight_decay", weight_decay)
  return optax.chain(
      optax.add_decayed_weights(weight_decay),
      optax.trace(decay=momentum),
      optax.scale(-1.0),
      mlr_snet(theta, num_classes=num_classes, gamma=gamma,
               switch_steps=switch_steps))


__all__ = ["HIDDEN", "MLRSNetState", "compute_gamma", "init_mlr_snet_params",
           "mlr_snet", "mlr_snet_cell", "mlr_snet_sgd"]
