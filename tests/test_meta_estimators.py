"""Meta-gradient estimators: finite differences, ES/PES direction, PES bias."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.controllers.mlr_snet import init_mlr_snet_params, mlr_snet_sgd
from lrmeta.meta import (PES, AntitheticES, MetaTrainer, TaskProblem,
                         TruncatedBackprop, checkpointed_scan, unrolled)
from lrmeta.tasks import make_task


# -- a smooth toy whose meta-objective is quadratic in theta ------------------
class ToyState(NamedTuple):
  step: jax.Array
  x: jax.Array
  key: jax.Array


_M = jnp.array([[1.0, -0.5, 0.2, 0.0], [0.3, 0.8, -0.4, 0.5],
                [-0.2, 0.1, 0.6, -0.7]])
_TARGET = jnp.array([1.0, -2.0, 0.5])


@dataclasses.dataclass(frozen=True)
class Toy:
  """x <- a x + M w + b; meta-loss 0.5 |x - target|^2 (quadratic in theta,
  so Gaussian smoothing leaves its gradient unchanged)."""

  a: float = 0.8
  nan_init_frac: float = 0.0  # members whose init is NaN (NaN-guard tests)

  def init(self, theta, key):
    del theta
    x = jnp.array([0.5, 0.0, -0.5])
    bad = jax.random.uniform(key) < self.nan_init_frac
    return ToyState(jnp.zeros((), jnp.int32), jnp.where(bad, jnp.nan, x), key)

  def unroll(self, theta, s, n):
    def step(s):
      x = self.a * s.x + _M @ theta["w"] + theta["b"]
      return ToyState(s.step + 1, x, s.key), {"train_loss": jnp.sum(x ** 2)}
    return checkpointed_scan(step, s, n)

  def meta_loss(self, theta, s):
    del theta
    return 0.5 * jnp.sum((s.x - _TARGET) ** 2)

  def step_of(self, s):
    return s.step


THETA0 = {"w": jnp.array([0.1, -0.2, 0.3, 0.05]), "b": jnp.array(0.1)}


def _flat(t):
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(t)])


def _cos(a, b):
  a, b = _flat(a), _flat(b)
  return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


def _episode_objective(problem, theta, horizon, window):
  """Sum over truncations of the meta-loss at each truncation's end."""
  s = problem.init(theta, jax.random.key(0))
  total = 0.0
  for _ in range(horizon // window):
    s, _ = problem.unroll(theta, s, window)
    total = total + problem.meta_loss(theta, s)
  return total


def _episode_sum(est, theta, calls, key=0):
  state = est.init(theta, jax.random.key(key))
  fn = jax.jit(est.estimate)
  total = jax.tree.map(jnp.zeros_like, theta)
  for i in range(calls):
    g, state, m = fn(theta, state, jax.random.key(100 + i))
    total = jax.tree.map(jnp.add, total, g)
  return total, m


def test_unrolled_matches_finite_differences_toy():
  toy, T = Toy(), 6
  est = unrolled(toy, T)
  g, _, m = est.estimate(THETA0, est.init(THETA0, jax.random.key(0)), None)
  f = lambda th: _episode_objective(toy, th, T, T)
  v = jax.tree.map(lambda x: jnp.ones_like(x) * 0.7, THETA0)
  eps = 1e-2
  fd = (f(jax.tree.map(lambda t, d: t + eps * d, THETA0, v))
        - f(jax.tree.map(lambda t, d: t - eps * d, THETA0, v))) / (2 * eps)
  np.testing.assert_allclose(_flat(g) @ _flat(v), fd, rtol=1e-3)
  np.testing.assert_allclose(m["meta_loss"], f(THETA0), rtol=1e-6)


@pytest.fixture(scope="module")
def mlp_problem(fmnist_small):
  task = make_task("fashion_mnist", "mlp", batch_size=32, data=fmnist_small,
                   model_kwargs={"hidden": (16,)})
  theta = init_mlr_snet_params(jax.random.key(0), hidden=8)
  problem = TaskProblem(task, lambda th: mlr_snet_sgd(th, momentum=0.9),
                        meta_batch_size=256)
  return problem, theta


@pytest.mark.slow
def test_unrolled_matches_finite_differences_task(mlp_problem):
  """MLR-SNet on a real (tiny) task: g . v against a central difference
  along v = g / |g| (float32: eps must be small, the meta-loss is far from
  linear in theta at eps ~ 1e-2)."""
  problem, theta = mlp_problem
  T = 4
  est = unrolled(problem, T)
  state = est.init(theta, jax.random.key(0))
  g, _, m = jax.jit(est.estimate)(theta, state, None)
  f = jax.jit(lambda th: problem.meta_loss(th, problem.unroll(
      th, jax.tree.map(lambda x: x[0], state.inner), T)[0]))
  np.testing.assert_allclose(f(theta), m["meta_loss"], rtol=1e-5)
  gn = jnp.linalg.norm(_flat(g))
  v = jax.tree.map(lambda x: x / gn, g)
  eps = 1e-3
  fd = (f(jax.tree.map(lambda t, d: t + eps * d, theta, v))
        - f(jax.tree.map(lambda t, d: t - eps * d, theta, v))) / (2 * eps)
  np.testing.assert_allclose(gn, fd, rtol=0.02)


def test_checkpointed_scan_matches_plain_scan():
  toy = Toy()

  def loss(th, remat):
    s = toy.init(th, jax.random.key(0))
    def step(s):
      x = toy.a * jnp.tanh(s.x) + _M @ th["w"] + th["b"]
      return ToyState(s.step + 1, x, s.key), x.sum()
    if remat:
      s, out = checkpointed_scan(step, s, 11, block=3)  # 3 blocks + 2 steps
    else:
      s, out = jax.lax.scan(lambda c, _: step(c), s, None, length=11)
    return toy.meta_loss(th, s) + 0.01 * out.sum()

  g1 = jax.grad(loss)(THETA0, True)
  g0 = jax.grad(loss)(THETA0, False)
  np.testing.assert_allclose(_flat(g1), _flat(g0), rtol=1e-5)


def test_es_direction_matches_backprop():
  toy, T = Toy(), 6
  g_bp, _ = _episode_sum(unrolled(toy, T), THETA0, 1)
  es = AntitheticES(toy, horizon=T, num_pairs=256, sigma=0.1, num_tasks=2)
  g_es, _ = _episode_sum(es, THETA0, 1)
  assert _cos(g_es, g_bp) > 0.9


def test_pes_unbiased_and_truncation_biased():
  """Summed over an episode, PES matches the exact gradient of the summed
  truncated objective; truncated backprop (same windows) does not."""
  toy, horizon, window = Toy(), 8, 2
  calls = horizon // window
  exact = jax.grad(lambda th: _episode_objective(toy, th, horizon, window))(
      THETA0)
  pes = PES(toy, horizon=horizon, window=window, num_pairs=64, sigma=0.1,
            num_tasks=32)
  g_pes, m = _episode_sum(pes, THETA0, calls)
  assert int(m["diverged"]) == 0
  g_tb, _ = _episode_sum(TruncatedBackprop(toy, horizon=horizon,
                                           window=window), THETA0, calls)
  rel = lambda g: float(jnp.linalg.norm(_flat(g) - _flat(exact))
                        / jnp.linalg.norm(_flat(exact)))
  assert _cos(g_pes, exact) > 0.9
  assert rel(g_pes) < 0.15, rel(g_pes)
  assert rel(g_tb) > 0.3, rel(g_tb)  # the bias PES removes


def test_pes_with_one_truncation_is_antithetic_es():
  """With window == horizon every PES sum holds one perturbation, so PES is
  antithetic ES on whole runs: same keys, same estimates, call after call."""
  toy = Toy()
  kw = dict(horizon=4, num_pairs=8, sigma=0.1, num_tasks=3)
  es, pes = AntitheticES(toy, **kw), PES(toy, **kw)
  s_es = es.init(THETA0, jax.random.key(0))
  s_pes = pes.init(THETA0, jax.random.key(0))
  f_es, f_pes = jax.jit(es.estimate), jax.jit(pes.estimate)
  for i in range(3):
    g_es, s_es, m_es = f_es(THETA0, s_es, jax.random.key(10 + i))
    g_pes, s_pes, m_pes = f_pes(THETA0, s_pes, jax.random.key(10 + i))
    np.testing.assert_allclose(_flat(g_pes), _flat(g_es), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(m_pes["meta_loss"], m_es["meta_loss"],
                               rtol=1e-6)
    np.testing.assert_array_equal(s_pes.episode, s_es.episode)
  assert float(jnp.linalg.norm(_flat(g_es))) > 0


def test_pes_restarts_episode():
  toy = Toy()
  pes = PES(toy, horizon=4, window=2, num_pairs=2, sigma=0.1)
  state = pes.init(THETA0, jax.random.key(0))
  fn = jax.jit(pes.estimate)
  steps = []
  for i in range(3):
    _, state, _ = fn(THETA0, state, jax.random.key(i))
    steps.append(int(state.inner.step[0, 0]))
  assert steps == [2, 4, 2]
  assert int(state.episode[0]) == 1


def test_nan_members_masked_and_reported():
  toy = Toy(nan_init_frac=0.5)
  for est in (unrolled(toy, 3, num_tasks=16),
              PES(toy, horizon=6, window=3, num_pairs=4, num_tasks=16)):
    g, state, m = jax.jit(est.estimate)(
        THETA0, est.init(THETA0, jax.random.key(0)), jax.random.key(1))
    np.testing.assert_array_equal(state.diverged, ~np.isfinite(
        np.asarray(state.inner.x).reshape(16, -1)).all(1))
    assert 0 < int(m["diverged"]) < 16, est.name
    assert int(m["diverged"]) + int(m["num_ok"]) == 16
    assert np.isfinite(_flat(g)).all(), est.name
    assert np.isfinite(float(m["meta_loss"]))


def test_outer_loop_skips_nonfinite_step():
  trainer = MetaTrainer([unrolled(Toy(nan_init_frac=1.0), 3, num_tasks=2)])
  state = trainer.init(THETA0, jax.random.key(0))
  new, m = jax.jit(trainer.step)(state)
  assert bool(m["skipped"])
  np.testing.assert_array_equal(_flat(new.theta), _flat(THETA0))


@pytest.mark.parametrize("make_est", [
    lambda p: TruncatedBackprop(p, horizon=8, window=2),
    lambda p: PES(p, horizon=8, window=2, num_pairs=16, sigma=0.05),
], ids=["truncated", "pes"])
def test_meta_training_reduces_meta_loss(make_est):
  trainer = MetaTrainer([make_est(Toy())],
                        meta_optimizer=optax.adam(0.05), clip_norm=None)
  state = trainer.init(THETA0, jax.random.key(0))
  step = jax.jit(trainer.step)
  f = lambda th: float(_episode_objective(Toy(), th, 4, 4))
  before = f(state.theta)
  for _ in range(40):
    state, _ = step(state)
  assert f(state.theta) < 0.5 * before


# -- the MLR-SNet authors' protocol: online look-ahead every K steps ----------
def _toy_lookahead_grad(theta, x):
  """Hand computation: one virtual step from x, 0.5 |x' - target|^2."""
  u = _M @ theta["w"] + theta["b"]
  r = Toy().a * x + u - _TARGET
  return {"w": _M.T @ r, "b": jnp.sum(r)}, 0.5 * jnp.sum(r ** 2)


def test_online_lookahead_against_hand_computation():
  from lrmeta.meta import OnlineLookahead
  a, lr = Toy().a, 0.1
  est = OnlineLookahead(Toy(), horizon=100, every=3)
  trainer = MetaTrainer([est], optax.sgd(lr), clip_norm=None)  # the authors: no clip
  state = trainer.init(THETA0, jax.random.key(0))
  step = jax.jit(trainer.step)
  theta = THETA0
  x = jnp.array([0.5, 0.0, -0.5])
  for real_steps, at in ((2, 2), (3, 5), (3, 8)):
    for _ in range(real_steps):  # real steps at the current (updated) theta
      x = a * x + _M @ theta["w"] + theta["b"]
    g, loss = _toy_lookahead_grad(theta, x)
    state, m = step(state)
    assert int(state.estimator_states[0].inner.step[0]) == at
    assert float(m["real_steps"]) == real_steps
    np.testing.assert_allclose(m["meta_loss"], loss, rtol=1e-5)
    theta = jax.tree.map(lambda t, gi: t - lr * gi, theta, g)
    for got, want in zip(jax.tree.leaves(state.theta), jax.tree.leaves(theta)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_online_lookahead_counts_within_epochs():
  """The authors' minibatch index restarts each epoch: with 4 steps per
  epoch and every=3 the look-ahead falls on each epoch's third step."""
  from lrmeta.meta import OnlineLookahead
  est = OnlineLookahead(Toy(), horizon=100, every=3, steps_per_epoch=4)
  trainer = MetaTrainer([est], optax.sgd(0.0))
  state = trainer.init(THETA0, jax.random.key(0))
  at = []
  for _ in range(3):
    state, _ = trainer.step(state)
    at.append(int(state.estimator_states[0].inner.step[0]))
  assert at == [2, 6, 10]


def test_carry_controller_state():
  from lrmeta.controllers.mlr_snet import MLRSNetState
  from lrmeta.meta import carry_controller_state
  def st(v, count):
    return MLRSNetState(jnp.asarray(count, jnp.int32), jnp.full(3, v),
                        jnp.full(3, 2 * v), jnp.asarray(0.5), jnp.asarray(v))
  inner = (optax.EmptyState(), st(1.0, 7))
  virtual = (optax.EmptyState(), st(3.0, 8))
  out = carry_controller_state(inner, virtual)[1]
  np.testing.assert_array_equal(out.h, virtual[1].h)
  np.testing.assert_array_equal(out.c, virtual[1].c)
  assert int(out.count) == 7 and float(out.learning_rate) == 1.0
