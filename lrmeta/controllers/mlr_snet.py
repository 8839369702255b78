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
the previous hidden state, ``Linear(in, width) -> ReLU -> Linear(width,
4 * hidden)`` with ``width = hidden // 2`` (25 at hidden 50: 11,776
meta-parameters), as in the authors' code (``meta-test/model/network.py``
lines 126-135; ``MLRSNetCell`` in
``meta-train/image-classification/module.py`` lines 274-283).

Cell semantics. The authors' repository holds two cells that differ in the
gates (``semantics=``):

* ``"meta_test"`` (the default): ``meta-test/model/network.py`` lines
  142-150, the cell the authors' meta-test script (``meta_test.py``) runs
  the published meta-trained nets with. The ``4 * hidden`` pre-activations split
  into the input, forget, transform and output gates, in that order, with no
  forget bias.
* ``"meta_train"``: ``meta-train/image-classification/module.py`` lines
  301-309, the cell the authors meta-train. The order is input, forget,
  output, transform and the forget gate reads ``sigmoid(f - 1)``.

The repository meta-trains with the second cell and runs the published nets
with the first; the published nets reproduce the rate scale of the authors'
meta-training log only under ``"meta_test"`` (under ``"meta_train"`` the
epoch-100 and epoch-200 nets give rates 16-38x higher; see
``docs/results/mlr_snet.md``), which is why it is the default here.

Initialisation (``init=`` of :func:`init_mlr_snet_params`):

* ``"torch"`` (the default): PyTorch's default for ``nn.Linear``, weights
  and biases uniform in :math:`\\pm 1/\\sqrt{\\text{fan in}}`. This is what
  the authors' code runs: its ``init_weights`` (``module.py`` lines 286-293)
  re-initialises only modules of type ``MetaLinear`` while the gate MLPs are
  ``nn.Linear``, so it never fires.
* ``"uniform"``: weights U(-0.1, 0.1), biases zero (what that
  ``init_weights`` was written to do, plus zero biases; lrmeta's earlier
  default), so the untrained controller starts near ``gamma / 2``.

gamma. ``gamma`` is taken in absolute value, as ``meta-test/meta_test.py``
line 52 does, so it stays positive when ``L0 * C < 1``. Its ``L0`` is chosen
by ``gamma_from``:

* ``"minibatch"`` (default): the loss of the first minibatch the controller
  sees, and at each snapshot switch the loss of that step's minibatch.
* ``"split"``: the paper's: the loss over the training set (or a stated
  number of its examples) in eval mode, computed before training and again
  at each switch (``meta_test.py`` lines 49-52, 74-75, 86-87). The training
  loop computes it (:func:`lrmeta.train.with_split_loss` hands it over as the
  ``gamma_loss=`` extra argument at step 0 and at each switch step).

Or pass a fixed ``gamma=`` (:func:`compute_gamma` of a precomputed loss).

Snapshot switching (the paper's meta-test protocol, ``meta_test.py``
lines 60-89): a tuple of ``theta`` snapshots and the steps at which to switch
to the next one; ``gamma`` is recomputed at each switch and the LSTM state is
carried across switches.

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
SEMANTICS = ("meta_test", "meta_train")
INITS = ("torch", "uniform")
GAMMA_FROM = ("minibatch", "split")


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


def default_width(hidden: int) -> int:
  """The gate-MLP width of the authors' cell: ``hidden // 2`` (at least 1)."""
  return max(1, hidden // 2)


def _linear(key: jax.Array, fan_in: int, fan_out: int, init: str
            ) -> tuple[jax.Array, jax.Array]:
  """``(w [fan_in, fan_out], b [fan_out])`` of one linear layer."""
  kw, kb = jax.random.split(key)
  if init == "torch":
    # nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5)) weights and
    # uniform biases, both bounded by 1 / sqrt(fan_in).
    bound = 1.0 / fan_in ** 0.5
    return (jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound,
                               bound),
            jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound))
  return (jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -0.1, 0.1),
          jnp.zeros((fan_out,), jnp.float32))


def init_mlr_snet_params(key: jax.Array, hidden: int = HIDDEN, *,
                         width: int | None = None, init: str = "torch"
                         ) -> Theta:
  """Initial meta-parameters of the cell.

  Args:
    key: PRNG key.
    hidden: LSTM hidden size (50 in the paper).
    width: gate-MLP width (``None``: ``hidden // 2``, the authors' code;
      ``hidden`` gives lrmeta's earlier, wider cell).
    init: ``"torch"`` (PyTorch's ``nn.Linear`` default, which the authors'
      code runs) or ``"uniform"`` (weights U(-0.1, 0.1), biases zero); see
      the module docstring.

  Returns:
    ``{"i2h": {w1, b1, w2, b2}, "h2h": {w1, b1, w2, b2}, "out": {w, b}}``
    where the gate MLPs map 1 -> width -> 4*hidden (input) and
    hidden -> width -> 4*hidden (recurrence), and ``out`` maps hidden -> 1.
    Weights are stored ``[in, out]`` (the transpose of PyTorch's).
  """
  checks.positive_int("init_mlr_snet_params", "hidden", hidden)
  width = default_width(hidden) if width is None else width
  checks.positive_int("init_mlr_snet_params", "width", width)
  if init not in INITS:
    raise ValueError(f"init_mlr_snet_params: init must be one of {INITS}, "
                     f"got {init!r}")
  ks = jax.random.split(key, 5)
  params = {}
  for name, fan_in, (k1, k2) in (("i2h", 1, ks[:2]), ("h2h", hidden, ks[2:4])):
    w1, b1 = _linear(k1, fan_in, width, init)
    w2, b2 = _linear(k2, width, 4 * hidden, init)
    params[name] = {"w1": w1, "b1": b1, "w2": w2, "b2": b2}
  w, b = _linear(ks[4], hidden, 1, init)
  params["out"] = {"w": w, "b": b}
  return params


def num_params(theta: Theta) -> int:
  """Number of meta-parameters (11,776 for the default cell at hidden 50)."""
  return int(sum(x.size for x in jax.tree.leaves(theta)))


def compute_gamma(initial_loss: chex.Numeric, num_classes: chex.Numeric
                  ) -> jax.Array:
  """The rate bound ``|sqrt(L0) * log(L0 * C) / C**0.25 / 4|`` of the paper."""
  l0 = jnp.asarray(initial_loss, jnp.float32)
  c = jnp.asarray(num_classes, jnp.float32)
  return jnp.abs(jnp.sqrt(l0) * jnp.log(l0 * c) / c ** 0.25 / 4.0)


def _mlp(p, x):
  return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def _check_semantics(fn: str, semantics: str) -> None:
  if semantics not in SEMANTICS:
    raise ValueError(f"{fn}: semantics must be one of {SEMANTICS}, got "
                     f"{semantics!r}")


def mlr_snet_cell(theta: Theta, loss: jax.Array, h: jax.Array, c: jax.Array,
                  semantics: str = "meta_test"
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One LSTM step: returns ``(h, c, sigmoid output in (0, 1))``.

  ``semantics`` picks the gate order and forget bias of the authors'
  meta-test cell (``network.py`` lines 142-150: in, forget, transform, out)
  or meta-train cell (``module.py`` lines 301-309: in, forget, out,
  transform; forget gate ``sigmoid(f - 1)``).
  """
  _check_semantics("mlr_snet_cell", semantics)
  hidden = h.shape[-1]
  x = jnp.reshape(jnp.asarray(loss, jnp.float32), (1,))
  gates = _mlp(theta["i2h"], x) + _mlp(theta["h2h"], h)
  blocks = [gates[k * hidden:(k + 1) * hidden] for k in range(4)]
  if semantics == "meta_test":
    i, f, g, o = blocks
    forget = jax.nn.sigmoid(f)
  else:
    i, f, o, g = blocks
    forget = jax.nn.sigmoid(f - 1.0)
  c = forget * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  out = jax.nn.sigmoid(h @ theta["out"]["w"] + theta["out"]["b"])[0]
  return h, c, out


def _hidden_size(theta: Theta) -> int:
  return int(theta["out"]["w"].shape[0])


def _check_args(fn: str, num_classes, gamma, switch_steps, semantics,
                gamma_from) -> None:
  """Static checks of the arguments :func:`mlr_snet` and
  :func:`mlr_snet_sgd` share."""
  checks.positive(fn, "num_classes", num_classes)
  _check_semantics(fn, semantics)
  if gamma_from not in GAMMA_FROM:
    raise ValueError(f"{fn}: gamma_from must be one of {GAMMA_FROM}, got "
                     f"{gamma_from!r}")
  if gamma is not None:
    checks.positive(fn, "gamma", gamma)
  steps = tuple(switch_steps)
  if (not all(checks.is_static_number(s) for s in steps)
      or list(steps) != sorted(set(steps)) or any(s <= 0 for s in steps)):
    raise ValueError(f"{fn}: switch_steps must be increasing positive "
                     f"integers, got {steps}")


def mlr_snet(theta: Theta | Sequence[Theta], *, num_classes: int = 10,
             gamma: float | None = None,
             switch_steps: Sequence[int] = (),
             semantics: str = "meta_test", gamma_from: str = "minibatch"
             ) -> optax.GradientTransformationExtraArgs:
  """Scales updates by the MLR-SNet rate computed from the training loss.

  Compose after a base optimizer whose learning rate is 1, e.g.
  ``optax.chain(optax.sgd(1.0), mlr_snet(theta))`` (about
  :func:`mlr_snet_sgd`, which adds weight decay) or ``optax.chain(optax.adam(1.0), mlr_snet(theta))``.
  The rate used at step ``t`` is computed from the loss of step ``t``, which
  arrives as the ``value=`` extra argument (required).

  Args:
    theta: meta-parameters (:func:`init_mlr_snet_params`), or a sequence of
      ``len(switch_steps) + 1`` snapshots for the paper's meta-test protocol.
    num_classes: ``C > 0`` in the formula for ``gamma``.
    gamma: a fixed rate bound ``> 0``; ``None`` computes it at step 0 and
      at every switch step from the loss ``gamma_from`` names.
    switch_steps: increasing positive steps at which to switch to the next
      snapshot (the LSTM state is carried across).
    semantics: ``"meta_test"`` or ``"meta_train"``, the authors' two cells
      (:func:`mlr_snet_cell`).
    gamma_from: ``"minibatch"`` (that step's ``value=``) or ``"split"``
      (the ``gamma_loss=`` extra argument, a loss over the training split
      that :func:`lrmeta.train.with_split_loss` supplies at those steps).

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
  _check_args("mlr_snet", num_classes, gamma, switch_steps, semantics,
              gamma_from)
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

  def update_fn(updates, state, params=None, *, value=None, gamma_loss=None,
                **extra_args):
    del params, extra_args
    if value is None:
      raise TypeError("mlr_snet needs the minibatch loss as the `value=` "
                      "extra argument")
    loss = jnp.asarray(value, jnp.float32)
    if gamma is None and gamma_from == "split":
      if gamma_loss is None:
        raise TypeError("mlr_snet(gamma_from='split') needs the split loss "
                        "as the `gamma_loss=` extra argument (see "
                        "lrmeta.train.with_split_loss)")
      l0 = jnp.asarray(gamma_loss, jnp.float32)
    else:
      l0 = loss
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
      g = jnp.where(g < 0, compute_gamma(l0, num_classes), g)
    h, c, out = mlr_snet_cell(th, loss, state.h, state.c, semantics)
    lr = g * out
    updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
    return updates, MLRSNetState(
        count=optax.safe_increment(state.count), h=h, c=c,
        gamma=jnp.asarray(g, jnp.float32),
        learning_rate=jnp.asarray(lr, jnp.float32))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def mlr_snet_sgd(theta: Theta | Sequence[Theta], momentum: float = 0.0, *,
                 weight_decay: float = 5e-4, num_classes: int = 10,
                 gamma: float | None = None,
                 switch_steps: Sequence[int] = (),
                 semantics: str = "meta_test", gamma_from: str = "minibatch"
                 ) -> optax.GradientTransformationExtraArgs:
  """SGD (PyTorch convention) whose rate is set by MLR-SNet at every step.

  .. math::

    b_t = \\mu b_{t-1} + g_t + \\lambda p_t, \\qquad
    p_{t+1} = p_t - \\eta_t b_t,

  with :math:`\\eta_t` from :func:`mlr_snet`; the momentum buffer does not
  absorb the rate, as in ``torch.optim.SGD`` which the paper uses.

  Args:
    theta: MLR-SNet meta-parameters (or snapshots, see :func:`mlr_snet`).
    momentum: heavy-ball momentum in ``[0, 1)`` (0, the default of the
      authors' ``meta_test.py`` line 18 and ``meta_train.py`` line 19).
    weight_decay: L2 coefficient ``>= 0`` added to the gradient (5e-4, the
      paper's).
    num_classes, gamma, switch_steps, semantics, gamma_from: see
      :func:`mlr_snet`.

  References:
    Shu et al., "MLR-SNet: Transferable LR Schedules for Heterogeneous
    Tasks", TPAMI 2022 (arXiv:2007.14546).
  """
  _check_args("mlr_snet_sgd", num_classes, gamma, switch_steps, semantics,
              gamma_from)
  checks.unit_interval("mlr_snet_sgd", "momentum", momentum)
  checks.non_negative("mlr_snet_sgd", "weight_decay", weight_decay)
  return optax.chain(
      optax.add_decayed_weights(weight_decay),
      optax.trace(decay=momentum),
      optax.scale(-1.0),
      mlr_snet(theta, num_classes=num_classes, gamma=gamma,
               switch_steps=switch_steps, semantics=semantics,
               gamma_from=gamma_from))


__all__ = ["GAMMA_FROM", "HIDDEN", "INITS", "MLRSNetState", "SEMANTICS",
           "compute_gamma", "default_width", "init_mlr_snet_params",
           "mlr_snet", "mlr_snet_cell", "mlr_snet_sgd", "num_params"]
