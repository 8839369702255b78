"""Self-adaptive structured learning rates: reference steps, exact
hypergradient of the log-rate factors, guards, toy-problem behaviour."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from controller_contract import check_clip_count, check_controller_contract
from lrmeta.controllers import self_adaptive as sa
from test_hypergradient import _Adam, _SGD, _loss, _params, _run

STRUCTS = sa.STRUCTURES


def _np_factors(shape, structure, lr0):
  f = {"scale": np.log(lr0)}
  if structure == "element":
    f["elem"] = np.zeros(shape)
  elif structure == "rank1" and len(shape) >= 1:
    if len(shape) >= 2:
      f["row"] = np.zeros(shape[:-1])
    f["col"] = np.zeros(shape[-1:])
  return f


def _np_log_rate(f):
  z = f["scale"]
  if "elem" in f:
    z = z + f["elem"]
  if "row" in f:
    z = z + f["row"][..., None]
  if "col" in f:
    z = z + f["col"]
  return z


def _reference(base, lr0, beta, structure, steps, b1=0.9, b2=0.99,
               eps=1e-12):
  """The rule written out with NumPy (float64)."""
  leaves, treedef = jax.tree.flatten(_params())
  theta = [np.asarray(x, np.float64) for x in leaves]
  grad_fn = jax.grad(lambda *ls: _loss(jax.tree.unflatten(treedef, ls)),
                     argnums=tuple(range(len(leaves))))
  fs = [_np_factors(x.shape, structure, lr0) for x in theta]
  ms = [{k: np.zeros_like(v) for k, v in f.items()} for f in fs]
  vs = [{k: np.zeros_like(v) for k, v in f.items()} for f in fs]
  prev = [np.zeros_like(x) for x in theta]
  for t in range(1, steps + 1):
    g = [np.asarray(x, np.float64) for x in
         grad_fn(*[jnp.asarray(x, jnp.float32) for x in theta])]
    for f, m, v, gi, pi in zip(fs, ms, vs, g, prev):
      h = gi * pi
      d = {"scale": h.sum()}
      if "elem" in f:
        d["elem"] = h
      if "row" in f:
        d["row"] = h.sum(-1)
      if "col" in f:
        d["col"] = h.reshape(-1, h.shape[-1]).sum(0)
      for k in f:
        m[k] = b1 * m[k] + (1 - b1) * d[k]
        v[k] = b2 * v[k] + (1 - b2) * d[k] ** 2
        f[k] = f[k] - beta * (m[k] / (1 - b1 ** t)) / (
            np.sqrt(v[k] / (1 - b2 ** t)) + eps)
    u = base.direction(g)
    prev = [np.exp(_np_log_rate(f)) * x for f, x in zip(fs, u)]
    theta = [a + b for a, b in zip(theta, prev)]
  return theta, fs


@pytest.mark.parametrize("structure", STRUCTS)
@pytest.mark.parametrize("base", ["sgd", "sgd_momentum", "adam"])
def test_matches_reference_steps(base, structure):
  tx_base, ref = {
      "sgd": (lambda: optax.sgd(1.0), _SGD),
      "sgd_momentum": (lambda: optax.sgd(1.0, momentum=0.9),
                       lambda: _SGD(0.9)),
      "adam": (lambda: optax.adam(1.0), _Adam)}[base]
  tx = sa.scale_by_self_adaptive_lr(tx_base(), 0.02, 0.05,
                                    structure=structure)
  params, state = _run(tx, 6)[-1]
  theta, fs = _reference(ref(), 0.02, 0.05, structure, 6)
  for got, want in zip(jax.tree.leaves(params), theta):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
  for got, want in zip(state.log_lr, fs):
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
  # Rates moved, and per-element structure gives distinct rates per element.
  assert abs(float(state.log_lr[0]["scale"]) - np.log(0.02)) > 0.05
  np.testing.assert_allclose(
      state.learning_rate,
      [np.mean(np.broadcast_to(np.exp(_np_log_rate(f)), x.shape))
       for f, x in zip(fs, theta)], rtol=1e-4)


@pytest.mark.parametrize("structure", STRUCTS)
def test_factor_gradients_are_lookahead_derivatives(structure):
  """With hyper_b1=0, mu holds exactly d L(theta_t) / d (log-rate factors)."""
  tx = sa.self_adaptive_sgd(0.05, 0.05, momentum=0.9, structure=structure,
                            hyper_b1=0.0)
  traj = _run(tx, 4)
  (p_prev, _), (_, s_mid), (_, s_next) = traj[-3], traj[-2], traj[-1]
  leaves, treedef = jax.tree.flatten(p_prev)
  steps = jax.tree.leaves(s_mid.prev_step)
  z_mid = [sa._log_rate(f) for f in s_mid.log_lr]  # pylint: disable=protected-access

  def lookahead(factors):
    # theta_prev + alpha(factors) * u_{t-1}, with alpha_mid * u = prev_step.
    new = [x + jnp.exp(sa._log_rate(f) - z) * d  # pylint: disable=protected-access
           for x, f, z, d in zip(leaves, factors, z_mid, steps)]
    return _loss(jax.tree.unflatten(treedef, new))

  want = jax.grad(lookahead)(s_mid.log_lr)
  for got, w in zip(s_next.mu, want):
    for k in w:
      np.testing.assert_allclose(got[k], w[k], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("structure", STRUCTS)
def test_contract(structure):
  check_controller_contract(
      lambda: sa.self_adaptive_sgd(0.05, momentum=0.9, structure=structure),
      inject=lambda: optax.inject_hyperparams(
          functools.partial(sa.self_adaptive_sgd, structure=structure))(
              initial_learning_rate=0.05, hyper_lr=1e-2))


def test_contract_adam():
  check_controller_contract(lambda: sa.self_adaptive_adam(1e-2))


@pytest.mark.parametrize("alpha0", [0.004, 0.8])
def test_quadratic_layer_rate_moves_towards_best_fixed_rate(alpha0):
  """One rate per tensor on a quadratic with curvatures in [1, 4]."""
  lams = jnp.linspace(1.0, 4.0, 8)
  best = 2.0 / 5.0
  loss = lambda x: 0.5 * jnp.sum(lams * x ** 2)
  tx = sa.self_adaptive_sgd(alpha0, 0.05, structure="layer")
  x0 = jnp.ones(8)
  x, s = x0, tx.init(x0)
  step = jax.jit(lambda x, s: _sgd_step(tx, loss, x, s))
  for _ in range(150):
    x, s = step(x, s)
  dist0 = abs(np.log(alpha0 / best))
  dist = abs(np.log(float(s.learning_rate[0]) / best))
  assert dist < 0.75 * dist0, (float(s.learning_rate[0]), best)
  assert float(loss(x)) < 1e-6 * float(loss(x0))


def _sgd_step(tx, loss, x, s):
  u, s = tx.update(jax.grad(loss)(x), s, x)
  return x + u, s


def test_rank1_learns_per_coordinate_rates():
  """On a diagonal quadratic the column factor learns larger rates for
  flatter coordinates (the best per-coordinate rate is 1 / curvature)."""
  lams = jnp.array([[1.0, 4.0]])
  loss = lambda w: 0.5 * jnp.sum(lams * w ** 2)
  tx = sa.self_adaptive_sgd(0.01, 0.05, structure="rank1")
  w0 = jnp.ones((3, 2))
  w, s = w0, tx.init(w0)
  step = jax.jit(lambda x, s: _sgd_step(tx, loss, x, s))
  for _ in range(60):
    w, s = step(w, s)
  rate = np.exp(np.asarray(sa._log_rate(s.log_lr[0])))  # pylint: disable=protected-access
  assert np.all(rate[:, 0] > rate[:, 1])
  assert float(loss(w)) < 1e-3 * float(loss(w0))


@pytest.mark.parametrize("structure", STRUCTS)
@pytest.mark.parametrize("beta,hits_bound", [(50.0, True), (1e-6, False)])
def test_num_clipped_counts_steps_at_a_bound(structure, beta, hits_bound):
  """A huge hypergradient rate drives a rate into max_lr and the count
  rises; a tiny one keeps every rate inside the bounds and the count 0."""
  loss = lambda w: 0.5 * jnp.sum(jnp.array([[0.5, 1.0]]) * w ** 2)
  tx = sa.self_adaptive_sgd(0.1, beta, structure=structure, max_lr=1.0)
  check_clip_count(tx, loss, jnp.ones((3, 2)), hits_bound)


def test_guard_clips_to_max_and_holds_on_nan():
  tx = sa.self_adaptive_sgd(0.5, 1.0, structure="layer", max_lr=1.0)
  x = jnp.ones(2)
  s = tx.init(x)
  for _ in range(3):  # consistent gradient: the rate is pushed up to max
    _, s = tx.update(jnp.ones(2), s, x)
  assert float(s.learning_rate[0]) == pytest.approx(1.0)
  assert bool(s.clipped[0]) and int(s.num_clipped) >= 1
  before = s.log_lr
  n = int(s.num_clipped)
  _, s = tx.update(jnp.array([jnp.nan, 1.0]), s, x)
  np.testing.assert_array_equal(s.log_lr[0]["scale"], before[0]["scale"])
  assert int(s.num_clipped) == n + 1
  assert np.isfinite(np.asarray(s.learning_rate)).all()
