"""The learned schedule: untrained it is the constant rate bitwise; the knots
interpolate in log-rate over the budget; the feedback is bounded; it saves,
loads and rebuilds; it passes the controller contract and differentiates
without retracing."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from controller_contract import check_controller_contract
from lrmeta import learned
from lrmeta.controllers import learned_schedule as ls
from lrmeta.learned import learned_schedule as kind
from lrmeta.train import applied_learning_rate

LR = 0.05
# Losses a run can produce, including the ones a guard must survive.
ODD_LOSSES = [2.3, 2.1, 0.0, -1.0, float("nan"), 1.7, float("inf"), 1e30,
              1e-30, 5.0, 0.3, float("-inf"), 2.0, 1.9, 0.01, 1.8, 3.0, 2.2,
              1.5, 1.4]


def _params():
  return {"w": jnp.array([1.0, -2.0, 0.5]), "b": {"c": jnp.array([[0.3]])}}


def _grad(p):
  return jax.grad(lambda q: 0.5 * sum(jnp.sum(x ** 2)
                                      for x in jax.tree.leaves(q)))(p)


def _run(tx, losses):
  """Updates and recorded rates of ``tx`` over the given ``value=`` losses
  (gradients from a quadratic).

  The update is jitted alone and applied outside it: inside one program XLA
  may fuse ``p + lr * u`` into a fused multiply-add, which rounds once
  instead of twice, so two chains with bitwise-equal updates could still
  drift apart by an ulp through the parameters.
  """
  p = _params()
  s = tx.init(p)
  update = jax.jit(lambda p, s, loss: tx.update(_grad(p), s, p, value=loss))
  ups, rates = [], []
  for loss in losses:
    u, s = update(p, s, jnp.float32(loss))
    p = jax.tree.map(lambda a, b: np.asarray(a) + np.asarray(b), p, u)
    ups.append(u)
    rates.append(float(applied_learning_rate(s)))
  return ups, np.asarray(rates)


def _random_theta(key, num_knots=8, hidden=8):
  """A theta as training might leave it: every leaf non-zero."""
  k1, k2, k3, k4 = jax.random.split(key, 4)
  theta = ls.init_learned_schedule_params(k1, num_knots, hidden)
  theta["knots"] = 0.5 * jax.random.normal(k2, (num_knots,))
  theta["feedback"]["w2"] = jax.random.normal(k3, (hidden,))
  theta["feedback"]["b2"] = 0.1 * jax.random.normal(k4, ())
  return theta


@pytest.mark.parametrize("use_feedback", [True, False])
def test_untrained_equals_constant_rate_sgd_bitwise(use_feedback):
  theta = ls.init_learned_schedule_params(jax.random.key(0))
  tx = ls.learned_schedule_sgd(theta, LR, 20, momentum=0.9,
                               use_feedback=use_feedback)
  ours, rates = _run(tx, ODD_LOSSES)
  ref, _ = _run(optax.sgd(LR, momentum=0.9), ODD_LOSSES)
  for a, b in zip(ours, ref):
    jax.tree.map(np.testing.assert_array_equal, a, b)
  np.testing.assert_array_equal(rates, np.float32(LR))
  # Composed after Adam, it is Adam at that rate, also bitwise.
  adam, _ = _run(optax.chain(optax.adam(1.0), ls.learned_schedule_scale(
      theta, LR, 20, use_feedback=use_feedback)), ODD_LOSSES)
  ref, _ = _run(optax.adam(LR), ODD_LOSSES)
  for a, b in zip(adam, ref):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_knots_interpolate_in_log_rate_and_hold_past_the_budget():
  # K = 5 knots over T = 40 steps: knots at t = 0, 10, 20, 30, 40.
  knots = np.array([0.0, 1.0, -1.0, 0.5, 2.0], np.float32)
  theta = ls.init_learned_schedule_params(jax.random.key(1), num_knots=5)
  theta["knots"] = jnp.asarray(knots)
  for use_feedback in (False, True):  # untrained feedback adds nothing
    tx = ls.learned_schedule_sgd(theta, LR, 40, use_feedback=use_feedback)
    _, rates = _run(tx, np.linspace(2.0, 0.5, 48))
    expect = {0: 0.0, 5: 0.5, 10: 1.0, 15: 0.0, 27: -1.0 + 0.7 * 1.5,
              30: 0.5, 40: 2.0, 47: 2.0}
    for t, s in expect.items():
      np.testing.assert_allclose(rates[t], LR * math.exp(s), rtol=1e-6,
                                 err_msg=f"t={t}")
  # On a knot the schedule is that knot's value exactly, also when the knot
  # steps are not whole multiples (T = 70 with K = 8: knots every 10 steps,
  # or T = 7: every step), and past the budget.
  knots8 = jnp.asarray(np.random.default_rng(0).normal(size=8), jnp.float32)
  for steps, every in ((70, 10), (7, 1)):
    for k in range(8):
      assert ls.knot_schedule(knots8, k * every, steps) == knots8[k]
    assert ls.knot_schedule(knots8, 10 * steps, steps) == knots8[-1]


def test_feedback_is_bounded_for_extreme_weights_and_losses():
  bound = 0.7
  key = jax.random.key(2)
  fb = {"w1": 1e6 * jax.random.normal(key, (3, 8)), "b1": jnp.full(8, 1e6),
        "w2": jnp.full(8, 1e6), "b2": jnp.asarray(1e6)}
  for f in ([1.0, 1.0, 1.0], [0.0, -1.0, 1.0], [1.0, -1.0, -1.0]):
    r = float(ls.feedback_output(fb, jnp.asarray(f), bound))
    assert abs(r) <= bound and abs(r) > 0.99 * bound
  # Output layer negated: the other bound, reached (tanh saturates to -1).
  neg = {**fb, "w2": -fb["w2"], "b2": -fb["b2"]}
  r = ls.feedback_output(neg, jnp.ones(3), bound)
  assert r == -ls.feedback_output(fb, jnp.ones(3), bound) == np.float32(-bound)
  # Whole controller: knots zero, huge feedback weights, absurd losses; the
  # rate stays within a factor e**bound of the base and finite.
  theta = ls.init_learned_schedule_params(key)
  theta["feedback"] = fb
  tx = ls.learned_schedule_sgd(theta, LR, 20, bound=bound)
  _, rates = _run(tx, ODD_LOSSES + [1e38, -1e38, 0.0])
  assert np.all(np.isfinite(rates))
  assert np.all(rates <= LR * math.exp(bound) * (1 + 1e-6))
  assert np.all(rates >= LR * math.exp(-bound) * (1 - 1e-6))


def test_loss_features_read_the_trend_and_stay_in_range():
  steps = 100
  tx = ls.learned_schedule_scale(ls.init_learned_schedule_params(
      jax.random.key(0)), LR, steps)
  g = {"w": jnp.ones(2)}
  update = jax.jit(lambda s, loss: tx.update(g, s, value=loss)[1])

  def features(losses):
    s = tx.init(g)
    for loss in losses:
      s = update(s, jnp.float32(loss))
    # Features of the last update: its count is one behind.
    return np.asarray(ls.loss_features(s._replace(count=s.count - 1), steps))

  # A constant loss: no slope, no ratio.
  np.testing.assert_allclose(features([1.3] * 50), [0.49, 0.0, 0.0],
                             atol=1e-6)
  # log loss falling by c per step: the smoothed slope tends to -c per step,
  # i.e. -c * T per budget, scaled by 1/10.
  c = 0.005
  f = features(np.exp(-c * np.arange(600)))
  np.testing.assert_allclose(f[:2], [1.0, -c * steps / 10], rtol=1e-4)
  assert -1.0 < f[2] < 0.0  # short average below the long one
  # A loss that jumps up: positive slope and ratio, clipped at 1.
  f = features([1.0] * 20 + [1e6] * 5)
  assert f[1] == 1.0 and f[2] == 1.0
  # Non-finite losses change nothing; features stay finite and in range.
  a = features([2.0, 1.5, 1.2])
  b = features([2.0, float("nan"), 1.5, float("inf"), 1.2])
  np.testing.assert_array_equal(a[1:], b[1:])
  for losses in ([float("nan")] * 3, [0.0, -1.0, 1e38], [1e-30, 1e30]):
    f = features(losses)
    assert np.all(np.isfinite(f)) and np.all(np.abs(f) <= 1.0)


def test_save_load_frozen_gives_the_same_rates(tmp_path):
  config = kind.config(base_lr=LR, momentum=0.9, num_knots=6, hidden=4,
                       bound=0.5, use_feedback=True, trained_on="test")
  ctl = learned.get("learned_schedule")
  assert ctl is kind.CONTROLLER
  theta = _random_theta(jax.random.key(3), num_knots=6, hidden=4)
  losses = np.linspace(2.3, 0.4, 24) + 0.1 * np.sin(np.arange(24))
  _, before = _run(ctl.optimizer(theta, config, 20), losses)
  learned.save(str(tmp_path / "ls"), theta, config)
  saved = learned.load(str(tmp_path / "ls"))
  assert saved.kind == "learned_schedule" and saved.config == config
  frozen = saved.frozen(20)
  _, after = _run(frozen.optimizer, losses)
  np.testing.assert_array_equal(after, before)
  assert frozen.signals(None, None, None, 1.5, None) == {"value": 1.5}
  assert np.ptp(before) > 0.01 * LR  # theta is doing something
  # learning_rate= replaces the base rate: every rate scales with it.
  _, double = _run(saved.frozen(20, learning_rate=2 * LR).optimizer, losses)
  np.testing.assert_allclose(double, 2 * before, rtol=1e-6)
  # Without feedback only the knots count: the rates ignore the losses.
  knots_only = {**config, "use_feedback": False}
  _, a = _run(ctl.optimizer(theta, knots_only, 20), losses)
  _, b = _run(ctl.optimizer(theta, knots_only, 20), losses[::-1])
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, before)
  with pytest.raises(ValueError, match="knots"):
    ctl.optimizer(theta, {**config, "num_knots": 8}, 20)


def test_controller_contract_alone_in_a_chain_and_injected():
  theta = _random_theta(jax.random.key(4))
  check_controller_contract(
      lambda: ls.learned_schedule_scale(theta, LR, 20))
  check_controller_contract(
      lambda: optax.chain(optax.sgd(1.0, momentum=0.9),
                          ls.learned_schedule_scale(theta, LR, 20)),
      inject=lambda: optax.inject_hyperparams(
          lambda learning_rate: ls.learned_schedule_sgd(
              theta, learning_rate, 20))(learning_rate=LR))
  ctl = learned.get("learned_schedule")
  check_controller_contract(lambda: ctl.optimizer(
      theta, kind.config(base_lr=LR), 20))


def test_value_is_required_only_with_feedback_and_arguments_are_checked():
  theta = ls.init_learned_schedule_params(jax.random.key(0))
  g = {"w": jnp.ones(2)}
  tx = ls.learned_schedule_scale(theta, LR, 10, use_feedback=False)
  u, s = tx.update(g, tx.init(g))
  np.testing.assert_array_equal(u["w"], np.float32(LR))
  assert float(s.learning_rate) == np.float32(LR)
  tx = ls.learned_schedule_scale(theta, LR, 10)
  with pytest.raises(TypeError, match="value="):
    tx.update(g, tx.init(g))
  for bad in (dict(num_steps=0), dict(bound=0.0), dict(learning_rate=-1.0),
              dict(short_decay=1.0)):
    kw = dict(learning_rate=LR, num_steps=10) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
      ls.learned_schedule_scale(theta, **kw)
  with pytest.raises(ValueError, match="num_knots"):
    ls.init_learned_schedule_params(jax.random.key(0), num_knots=1)
  with pytest.raises(ValueError, match="knots"):
    ls.learned_schedule_scale({**theta, "knots": jnp.zeros((1,))}, LR, 10)


def test_meta_gradient_reaches_theta_without_retracing():
  """A jitted inner run with theta as an argument: one trace for any theta,
  and finite, non-zero gradients for the knots and the feedback layer."""
  traces = {"n": 0}
  steps = 12

  def final_loss(theta):
    traces["n"] += 1
    tx = ls.learned_schedule_sgd(theta, 0.1, steps, momentum=0.0)
    loss_fn = lambda p: 0.5 * jnp.sum(p ** 2 * jnp.array([1.0, 4.0]))
    p = jnp.array([1.0, 1.0])

    def body(carry, _):
      p, s = carry
      loss, g = jax.value_and_grad(loss_fn)(p)
      u, s = tx.update(g, s, p, value=loss)
      return (optax.apply_updates(p, u), s), None
    (p, _), _ = jax.lax.scan(body, (p, tx.init(p)), None, length=steps)
    return loss_fn(p)

  grad = jax.jit(jax.grad(final_loss))
  theta = ls.init_learned_schedule_params(jax.random.key(5))
  g1 = grad(theta)
  g2 = grad(_random_theta(jax.random.key(6)))
  assert traces["n"] == 1
  for g in (g1, g2):
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(g))
    assert np.any(np.asarray(g["knots"]) != 0)
    assert np.any(np.asarray(g["feedback"]["w2"]) != 0)
  # Untrained, W1 and b1 get no gradient (w2 = 0), the output layer does.
  assert np.all(np.asarray(g1["feedback"]["w1"]) == 0)
  # Plain gradient descent on a quadratic far below its stable rate: a
  # higher rate at any step lowers the final loss, so every knot's
  # gradient is negative.
  assert np.all(np.asarray(g1["knots"]) < 0)


def test_host_theta_works_inside_a_traced_loop():
  """A theta read back from disk is numpy; the step may index it with a
  traced counter (inside scan / jit)."""
  theta = jax.device_get(ls.init_learned_schedule_params(jax.random.key(0)))
  theta["knots"] = np.linspace(0.0, -1.0, 8).astype(np.float32)
  tx = ls.learned_schedule_sgd(theta, 0.05, 20)
  params = {"w": jnp.ones(3)}

  def body(state, _):
    _, state = tx.update({"w": jnp.ones(3)}, state, params,
                         value=jnp.float32(1.0))
    return state, state[-1].learning_rate
  _, rates = jax.jit(lambda s: jax.lax.scan(body, s, None, length=20))(
      tx.init(params))
  want = 0.05 * np.exp(np.interp(np.arange(20) / 20, np.linspace(0, 1, 8),
                                 theta["knots"]))
  np.testing.assert_allclose(np.asarray(rates), want, rtol=1e-5)
