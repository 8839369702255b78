"""MLR-SNet controller: contract, hand-computed steps, gamma, snapshots."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from controller_contract import check_controller_contract
from lrmeta.controllers.mlr_snet import (compute_gamma, init_mlr_snet_params,
                                         mlr_snet, mlr_snet_cell,
                                         mlr_snet_sgd)
from script_module import load_script

THETA = init_mlr_snet_params(jax.random.key(0), hidden=8)


def _const_theta(bias: float, hidden: int = 8):
  """All weights zero: h = c = 0 and the output is sigmoid(bias)."""
  th = jax.tree.map(jnp.zeros_like, init_mlr_snet_params(jax.random.key(1),
                                                         hidden))
  th["out"]["b"] = jnp.full((1,), bias)
  return th


@pytest.mark.parametrize("make_tx,inject", [
    (lambda: mlr_snet_sgd(THETA, momentum=0.9),
     lambda: optax.inject_hyperparams(mlr_snet_sgd)(theta=THETA,
                                                    momentum=0.9)),
    (lambda: optax.chain(optax.adam(1.0), mlr_snet(THETA)), None),
    (lambda: mlr_snet_sgd([THETA, _const_theta(0.0)], switch_steps=(2,)),
     None),
    (lambda: mlr_snet_sgd(THETA, semantics="meta_train"), None),
], ids=["mlr_snet_sgd", "adam_chain", "snapshots", "meta_train_cell"])
def test_contract(make_tx, inject):
  check_controller_contract(make_tx, inject=inject)


def test_gamma_formula():
  l0, c = 2.302585, 10
  want = np.sqrt(l0) * np.log(l0 * c) / c ** 0.25 / 4
  np.testing.assert_allclose(compute_gamma(l0, c), want, rtol=1e-6)
  # abs(): stays positive when L0 * C < 1.
  assert compute_gamma(0.05, 10) > 0


def test_hand_computed_step():
  """Zero weights: rate = gamma * sigmoid(b) with gamma from the first loss."""
  th = _const_theta(0.3)
  tx = mlr_snet_sgd(th, momentum=0.0, weight_decay=0.0, num_classes=10)
  p = {"w": jnp.array([1.0, -2.0])}
  s = tx.init(p)
  g = {"w": jnp.array([0.5, 0.25])}
  u, s = tx.update(g, s, p, value=jnp.asarray(3.0))
  lr = compute_gamma(3.0, 10) * jax.nn.sigmoid(0.3)
  np.testing.assert_allclose(u["w"], -lr * g["w"], rtol=1e-6)
  mstate = s[-1]
  np.testing.assert_allclose(mstate.learning_rate, lr, rtol=1e-6)
  # gamma is kept from the first loss, not recomputed.
  u, s = tx.update(g, s, p, value=jnp.asarray(0.5))
  np.testing.assert_allclose(u["w"], -lr * g["w"], rtol=1e-6)


def test_fixed_gamma_and_lstm_reads_loss():
  tx = mlr_snet(THETA, gamma=0.1)
  p = {"w": jnp.ones(3)}
  lrs = []
  for loss in (2.0, 2.0, 0.1):
    s = tx.init(p)
    _, s = tx.update({"w": jnp.ones(3)}, s, p, value=jnp.asarray(loss))
    lrs.append(float(s.learning_rate))
  assert 0 < lrs[0] < 0.1
  assert lrs[0] == lrs[1] and lrs[0] != lrs[2]  # a function of the loss


def test_snapshot_switch_recomputes_gamma():
  ths = [_const_theta(0.0), _const_theta(2.0)]
  tx = mlr_snet(ths, switch_steps=(2,), num_classes=10)
  p = {"w": jnp.ones(2)}
  s = tx.init(p)
  lrs = []
  for loss in (3.0, 2.0, 1.0, 0.5):
    _, s = tx.update({"w": jnp.ones(2)}, s, p, value=jnp.asarray(loss))
    lrs.append(float(s.learning_rate))
  g0, g2 = compute_gamma(3.0, 10), compute_gamma(1.0, 10)
  np.testing.assert_allclose(lrs[:2], [g0 * 0.5] * 2, rtol=1e-6)
  np.testing.assert_allclose(lrs[2:], [g2 * jax.nn.sigmoid(2.0)] * 2,
                             rtol=1e-6)


def test_cell_gradient_reaches_every_leaf():
  def f(th):
    h = c = jnp.zeros(8)
    for loss in (2.0, 1.5):
      h, c, out = mlr_snet_cell(th, jnp.asarray(loss), h, c)
    return out
  g = jax.grad(f)(THETA)
  assert all(float(jnp.abs(x).sum()) > 0 for x in jax.tree.leaves(g))


def test_requires_value():
  tx = mlr_snet(THETA)
  p = {"w": jnp.ones(2)}
  with pytest.raises(TypeError, match="value"):
    tx.update(p, tx.init(p), p)


def test_overhead_bench_row():
  (name, base, ctl), = load_script("bench_controller_overhead").mlr_snet_rows()
  assert name == "mlr_snet_sgd"
  assert isinstance(ctl(), optax.GradientTransformationExtraArgs)
  assert isinstance(base(), optax.GradientTransformation)


@pytest.mark.slow
def test_one_step_lookahead_meta_training_on_task(fmnist_small):
  """The paper's scheme end to end on a real (tiny) task, population of 2:
  one differentiable SGD step every 4 steps, scored on a validation batch;
  episodes of 8 steps restart; theta moves and stays finite."""
  from lrmeta.meta import MetaTrainer, TaskProblem, one_step_lookahead
  from lrmeta.tasks import make_task
  task = make_task("fashion_mnist", "mlp", batch_size=32, data=fmnist_small,
                   model_kwargs={"hidden": (16,)})
  problem = TaskProblem(task, lambda th: mlr_snet_sgd(th, momentum=0.9),
                        meta_batch_size=128)
  est = one_step_lookahead(problem, horizon=8, every=4, num_tasks=2)
  trainer = MetaTrainer([est])
  state = trainer.init(THETA, jax.random.key(0))
  step = jax.jit(trainer.step)
  for _ in range(3):
    state, m = step(state)
  assert int(state.estimator_states[0].inner.step[0]) == 4  # restarted once
  assert int(state.estimator_states[0].episode[0]) == 1
  assert np.isfinite(float(m["meta_loss"])) and not bool(m["skipped"])
  moved = max(float(jnp.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(state.theta), jax.tree.leaves(THETA)))
  assert 0 < moved < 1e-2  # Adam(1e-3): at most ~3e-3 per leaf in 3 steps
