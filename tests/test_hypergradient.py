"""Hypergradient descent: hand-computed steps, exact hypergradient, guards."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from controller_contract import check_clip_count, check_controller_contract
from lrmeta.controllers import hypergradient as hd
from lrmeta.train import applied_learning_rate
from script_module import load_script

GRANS = hd.GRANULARITIES
RULES = hd.RULES


def _params():
  return {"a": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[0.3, -0.7]])}


def _loss(p):
  # Non-separable and non-quadratic so that every step differs.
  return (0.5 * jnp.sum(jnp.array([1.0, 2.0, 3.0]) * p["a"] ** 2)
          + jnp.sum(jnp.cos(p["b"])) + 0.3 * p["a"][0] * p["b"][0, 1]
          + 0.1 * jnp.sum(p["a"] ** 4))


def _run(tx, steps, params=None):
  params = _params() if params is None else params
  state = tx.init(params)
  step = jax.jit(lambda p, s: _apply(tx, p, s))
  traj = [(params, state)]
  for _ in range(steps):
    params, state = step(params, state)
    traj.append((params, state))
  return traj


def _apply(tx, p, s):
  loss, g = jax.value_and_grad(_loss)(p)
  u, s = tx.update(g, s, p, value=loss)
  return optax.apply_updates(p, u), s


# -- an independent NumPy reference of HD on each base ---------------------------


class _SGD:
  def __init__(self, momentum=0.0, nesterov=False):
    self.mu, self.nesterov, self.m = momentum, nesterov, None

  def direction(self, g):  # unit-rate update, Optax sign (added to params)
    if self.mu == 0.0:
      return [-x for x in g]
    self.m = [x.copy() for x in g] if self.m is None else [
        x + self.mu * m for x, m in zip(g, self.m)]
    if self.nesterov:
      return [-(x + self.mu * m) for x, m in zip(g, self.m)]
    return [-m for m in self.m]


class _Adam:
  def __init__(self, b1=0.9, b2=0.999, eps=1e-8):
    self.b1, self.b2, self.eps, self.t = b1, b2, eps, 0
    self.m = self.v = None

  def direction(self, g):
    self.t += 1
    if self.m is None:
      self.m = [np.zeros_like(x) for x in g]
      self.v = [np.zeros_like(x) for x in g]
    self.m = [self.b1 * m + (1 - self.b1) * x for m, x in zip(self.m, g)]
    self.v = [self.b2 * v + (1 - self.b2) * x * x for v, x in zip(self.v, g)]
    mh = [m / (1 - self.b1 ** self.t) for m in self.m]
    vh = [v / (1 - self.b2 ** self.t) for v in self.v]
    return [-a / (np.sqrt(b) + self.eps) for a, b in zip(mh, vh)]


def _reference(base, alpha0, beta, rule, gran, steps):
  """HD written out per step with NumPy (float64), leaves in tree order."""
  leaves, treedef = jax.tree.flatten(_params())
  theta = [np.asarray(x, np.float64) for x in leaves]
  grad_fn = jax.grad(lambda *ls: _loss(jax.tree.unflatten(treedef, ls)),
                     argnums=tuple(range(len(leaves))))
  if gran == "global":
    alpha = [alpha0]
  elif gran == "per_layer":
    alpha = [alpha0] * len(theta)
  else:
    alpha = [np.full(x.shape, alpha0) for x in theta]
  u_prev = [np.zeros_like(x) for x in theta]
  rates = []
  for _ in range(steps):
    g = [np.asarray(x, np.float64) for x in
         grad_fn(*[jnp.asarray(x, jnp.float32) for x in theta])]
    if gran == "global":
      h = [sum(np.sum(a * b) for a, b in zip(g, u_prev))]
      gn = [np.sqrt(sum(np.sum(a * a) for a in g))]
      un = [np.sqrt(sum(np.sum(b * b) for b in u_prev))]
    elif gran == "per_layer":
      h = [np.sum(a * b) for a, b in zip(g, u_prev)]
      gn = [np.linalg.norm(a) for a in g]
      un = [np.linalg.norm(b) for b in u_prev]
    else:
      h = [a * b for a, b in zip(g, u_prev)]
      gn = [np.abs(a) for a in g]
      un = [np.abs(b) for b in u_prev]
    if rule == "additive":
      alpha = [a - beta * x for a, x in zip(alpha, h)]
    else:
      alpha = [a * (1 - beta * x / (n1 * n2 + 1e-12))
               for a, x, n1, n2 in zip(alpha, h, gn, un)]
    u = base.direction(g)
    per_leaf = alpha * len(theta) if gran == "global" else alpha
    theta = [t + a * x for t, a, x in zip(theta, per_leaf, u)]
    u_prev = u
    rates.append([np.array(a, np.float64) for a in alpha])
  return theta, rates


BASES = {
    "sgd": (lambda: optax.sgd(1.0), lambda: _SGD(), 0.05, 1e-3),
    "sgd_momentum": (lambda: optax.sgd(1.0, momentum=0.9),
                     lambda: _SGD(0.9), 0.02, 5e-4),
    "sgdn": (lambda: optax.sgd(1.0, momentum=0.9, nesterov=True),
             lambda: _SGD(0.9, nesterov=True), 0.02, 5e-4),
    "adam": (lambda: optax.adam(1.0), _Adam, 0.01, 1e-3),
}


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("gran", GRANS)
@pytest.mark.parametrize("base", sorted(BASES))
def test_matches_reference_steps(base, gran, rule):
  """The controller reproduces the hand-written rule for 6 steps."""
  tx_base, ref_base, alpha0, beta = BASES[base]
  if rule == "multiplicative":
    beta = 0.1
  steps = 6
  traj = _run(hd.scale_by_hypergradient(tx_base(), alpha0, beta, rule=rule,
                                        granularity=gran), steps)
  theta, rates = _reference(ref_base(), alpha0, beta, rule, gran, steps)
  params, state = traj[-1]
  for got, want in zip(jax.tree.leaves(params), theta):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
  want_lr = np.concatenate([np.ravel(a) for a in rates[-1]])
  np.testing.assert_allclose(np.ravel(state.learning_rate), want_lr,
                             rtol=2e-4, atol=1e-7)
  # The rate really moved (the check is not vacuous).
  assert np.max(np.abs(want_lr - alpha0)) > 1e-4 * alpha0


def test_hd_sgd_two_steps_by_hand():
  """HD-SGD on f(x) = x^2 from x=1, alpha0=0.1, beta=0.01, written out."""
  tx = hd.hd_sgd(0.1, 0.01)
  loss = lambda p: jnp.sum(p ** 2)
  x = jnp.array([1.0])
  s = tx.init(x)
  # step 1: g=2, h=0, alpha=0.1, x = 1 - 0.1*2 = 0.8
  u, s = tx.update(jax.grad(loss)(x), s, x)
  x = x + u
  np.testing.assert_allclose(x, [0.8], rtol=1e-6)
  # step 2: g=1.6, u_prev=-2, h=-3.2, alpha=0.1+0.032=0.132, x=0.8-0.2112
  u, s = tx.update(jax.grad(loss)(x), s, x)
  x = x + u
  np.testing.assert_allclose(s.learning_rate, 0.132, rtol=1e-6)
  np.testing.assert_allclose(s.hypergradient, -3.2, rtol=1e-6)
  np.testing.assert_allclose(x, [0.5888], rtol=1e-6)


@pytest.mark.parametrize("gran", GRANS)
@pytest.mark.parametrize("base", ["sgd", "sgdn", "adam"])
def test_hypergradient_is_lookahead_derivative(base, gran):
  """state.hypergradient == d/d alpha L(theta_{t-1} + alpha u_{t-1})."""
  tx = hd.scale_by_hypergradient(BASES[base][0](), 0.05, 0.01,
                                 granularity=gran)
  traj = _run(tx, 4)
  (p_prev, _), (p_mid, s_mid), (_, s_next) = traj[-3], traj[-2], traj[-1]
  u_prev = s_mid.prev_update  # u_{t-1}, applied between p_prev and p_mid
  leaves, treedef = jax.tree.flatten(p_prev)
  u_leaves = jax.tree.leaves(u_prev)

  def lookahead(alpha):
    rates = hd._per_leaf(alpha, leaves, gran)  # pylint: disable=protected-access
    new = [x + r * u for x, r, u in zip(leaves, rates, u_leaves)]
    return _loss(jax.tree.unflatten(treedef, new))

  # Sanity: p_mid is the lookahead point at the rate used in that step.
  rates = hd._per_leaf(s_mid.learning_rate, leaves, gran)  # pylint: disable=protected-access
  for x, r, u, m in zip(leaves, rates, u_leaves, jax.tree.leaves(p_mid)):
    np.testing.assert_allclose(x + r * u, m, rtol=1e-6, atol=1e-7)
  want = jax.grad(lookahead)(s_mid.learning_rate)
  np.testing.assert_allclose(s_next.hypergradient, want, rtol=1e-5,
                             atol=1e-8)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("gran", GRANS)
def test_contract(gran, rule):
  check_controller_contract(
      lambda: hd.hd_sgd(0.05, momentum=0.9, rule=rule, granularity=gran),
      inject=lambda: optax.inject_hyperparams(
          functools.partial(hd.hd_sgd, rule=rule, granularity=gran))(
              initial_learning_rate=0.05, hyper_lr=1e-3))


def test_contract_adam():
  check_controller_contract(
      lambda: hd.hd_adam(1e-2, granularity="per_layer"),
      inject=lambda: optax.inject_hyperparams(hd.hd_adam)(
          initial_learning_rate=1e-2, hyper_lr=1e-7))


def test_composes_with_user_chain():
  """Any chain that gives a direction works as a base (here clip + adam)."""
  base = optax.chain(optax.clip_by_global_norm(100.0), optax.scale_by_adam(),
                     optax.scale(-1.0))
  ref = hd.hd_adam(1e-2, 1e-4)
  tx = hd.scale_by_hypergradient(base, 1e-2, 1e-4)
  p1, _ = _run(ref, 5)[-1]
  p2, _ = _run(tx, 5)[-1]  # grads here have norm < 100: clip inactive
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    np.testing.assert_allclose(a, b, rtol=1e-5)


def _quadratic(lams):
  lams = jnp.asarray(lams)
  return lambda p: 0.5 * jnp.sum(lams * p ** 2)


@pytest.mark.parametrize("rule,beta", [("additive", 1e-3),
                                       ("multiplicative", 5e-2)])
@pytest.mark.parametrize("alpha0", [0.004, 0.8])
def test_quadratic_moves_towards_best_fixed_rate(rule, beta, alpha0):
  """Noiseless quadratic, curvatures in [1, 4]: best fixed GD rate 2/5.

  From 100x too small and from 2x too large (where fixed-rate GD diverges,
  the limit being 2/4), the rate ends much closer to 2/5 in log scale and
  the loss converges.
  """
  lams = jnp.linspace(1.0, 4.0, 8)
  best = 2.0 / (1.0 + 4.0)
  loss = _quadratic(lams)
  tx = hd.hd_sgd(alpha0, beta, rule=rule, max_lr=1.0)
  x0 = jnp.ones(8)
  x, s = x0, tx.init(x0)

  @jax.jit
  def step(x, s):
    u, s = tx.update(jax.grad(loss)(x), s, x)
    return x + u, s

  for _ in range(100):
    x, s = step(x, s)
  dist0 = abs(np.log(alpha0 / best))
  dist = abs(np.log(float(s.learning_rate) / best))
  assert dist < 0.75 * dist0, (float(s.learning_rate), best)
  assert float(loss(x)) < 1e-6 * float(loss(x0))
  assert int(s.num_clipped) == 0


def test_guard_clips_negative_rate_and_shows_it():
  """A huge hypergradient step would make the rate negative: clipped."""
  tx = hd.hd_sgd(0.1, 10.0, min_lr=1e-4, max_lr=1.0)
  x = jnp.array([1.0, 1.0])
  s = tx.init(x)
  u, s = tx.update(jnp.array([1.0, 1.0]), s, x)  # u_prev = -g
  assert not bool(s.clipped) and int(s.num_clipped) == 0
  # Gradient flipped: h = g . u_prev = +2 * big -> alpha - 10*h << 0.
  u, s = tx.update(jnp.array([-5.0, -5.0]), s, x)
  assert float(s.learning_rate) == pytest.approx(1e-4)
  assert bool(s.clipped) and int(s.num_clipped) == 1
  # Same direction again: the rate recovers from the floor.
  u, s = tx.update(jnp.array([-5.0, -5.0]), s, x)
  assert float(s.learning_rate) == pytest.approx(1.0)  # clipped at max
  assert int(s.num_clipped) == 2


@pytest.mark.parametrize("gran", GRANS)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("beta,hits_bound", [(1e3, True), (1e-6, False)])
def test_num_clipped_counts_steps_at_a_bound(rule, gran, beta, hits_bound):
  """A huge hypergradient rate drives the rate into max_lr and the count
  rises; a tiny one keeps every rate inside the bounds and the count 0."""
  loss = _quadratic(jnp.linspace(0.5, 1.0, 4))
  tx = hd.hd_sgd(0.1, beta, rule=rule, granularity=gran, max_lr=1.0)
  check_clip_count(tx, loss, jnp.ones(4), hits_bound)


def test_guard_nan_holds_rate():
  tx = hd.hd_sgd(0.1, 1e-3, granularity="per_layer")
  p = {"a": jnp.ones(2), "b": jnp.ones(3)}
  s = tx.init(p)
  _, s = tx.update(jax.tree.map(jnp.ones_like, p), s, p)
  g = {"a": jnp.array([jnp.nan, 1.0]), "b": jnp.ones(3)}
  _, s = tx.update(g, s, p)
  lr = np.asarray(s.learning_rate)
  assert lr[0] == pytest.approx(0.1) and np.isfinite(lr).all()
  assert lr[1] > 0.1  # the healthy tensor still adapted
  np.testing.assert_array_equal(np.asarray(s.clipped), [True, False])


def test_vmapped_over_initial_rates():
  """train_population calls the factory with traced hyperparameters."""
  def run(lr0):
    tx = hd.hd_sgd(lr0, 1e-3, momentum=0.9)
    p = _params()
    s = tx.init(p)
    for _ in range(3):
      p, s = _apply(tx, p, s)
    return applied_learning_rate(s)
  out = jax.jit(jax.vmap(run))(jnp.array([0.01, 0.1]))
  assert out.shape == (2,) and np.isfinite(out).all()
  assert not np.allclose(out[0], out[1])


def test_learning_rate_tree_shapes():
  tx = hd.hd_sgd(0.1, granularity="per_element")
  p = _params()
  _, s = _run(tx, 2)[-1]
  tree = hd.learning_rate_tree(s, p, "per_element")
  assert jax.tree.map(jnp.shape, tree) == jax.tree.map(jnp.shape, p)


def test_overhead_bench_rows_build():
  rows = load_script("bench_controller_overhead").hypergradient_rows()
  names = [r[0] for r in rows]
  assert "hd_sgd_global" in names and "hd_sgd_per_layer" in names
  for _, base, ctl in rows:
    assert isinstance(ctl(), optax.GradientTransformationExtraArgs)
    assert isinstance(base(), optax.GradientTransformation)
