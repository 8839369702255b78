"""The context schedule: zero context weights are the learned schedule
bitwise; the budget and the observation window move the rate as the
weights say; misshapen thetas and bad arguments are refused; the learned
kind builds it from a config with ``context`` and warm-starts it from a
shipped controller."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from controller_contract import check_controller_contract
from lrmeta import learned, pretrained
from lrmeta.controllers import context_schedule as cs
from lrmeta.controllers import learned_schedule as ls
from lrmeta.experiments.family_loop import warm_start
from lrmeta.learned import learned_schedule as kind
from lrmeta.train import applied_learning_rate
from test_learned_schedule import _run

LR = 0.01
# A falling loss with noise, a non-finite one and a jump.
LOSSES = [2.3, 2.2, 2.0, 1.9, float("nan"), 1.7, 1.6, 1.65, 1.5, 1.4,
          1.35, 1.3, 3.0, 1.2, 1.15, 1.1, 1.05, 1.0, 0.98, 0.95]


def _trained():
  return pretrained.load("learned_schedule_adam").theta


def _with_context(theta, knots=None, rate=None):
  ctx = cs.init_context_params(theta["knots"].shape[0])
  if knots is not None:
    ctx["knots"] = jnp.asarray(knots, jnp.float32)
  if rate is not None:
    ctx["rate"] = jnp.asarray(rate, jnp.float32)
  return {**theta, "context": ctx}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_zero_context_is_the_learned_schedule_bitwise(optimizer):
  theta = _trained()
  make = (ls.learned_schedule_adam if optimizer == "adam"
          else ls.learned_schedule_sgd)
  ref_u, ref_r = _run(make(theta, LR, len(LOSSES)), LOSSES)
  ups, rates = _run(cs.context_schedule_chain(
      _with_context(theta), LR, len(LOSSES), optimizer=optimizer), LOSSES)
  np.testing.assert_array_equal(rates, ref_r)
  for a, b in zip(ups, ref_u):
    jax.tree.map(np.testing.assert_array_equal, a, b)
  assert len(set(ref_r)) > 5  # the schedule moves: the check is not trivial


def test_budget_weight_scales_the_rate_by_the_budget():
  theta = _trained()
  v = 0.3
  for steps in (50, 200, 800):
    _, ref = _run(ls.learned_schedule_adam(theta, LR, steps), LOSSES)
    _, got = _run(cs.context_schedule_chain(
        _with_context(theta, rate=[v, 0.0, 0.0]), LR, steps), LOSSES)
    c = cs.budget_feature(steps)
    np.testing.assert_allclose(got / ref, math.exp(math.tanh(v * c)),
                               rtol=1e-5)
  # Longer budgets than the reference get a higher rate, shorter a lower.
  assert cs.budget_feature(800) > 0 > cs.budget_feature(50)
  assert cs.budget_feature(200) == 0.0


def test_window_weight_acts_after_the_window_only():
  theta = _trained()
  steps = 100  # window: the first 10 updates
  w = cs.window_steps(steps, 0.1)
  assert w == 10
  _, ref = _run(ls.learned_schedule_adam(theta, LR, steps), LOSSES)
  _, got = _run(cs.context_schedule_chain(
      _with_context(theta, rate=[0.0, 0.0, 0.8]), LR, steps), LOSSES)
  np.testing.assert_array_equal(got[:w], ref[:w])
  # The loss fell over the window: a positive weight lowers the rate, by
  # the same factor at every later step (the window's change is frozen).
  ratio = got[w:] / ref[w:]
  assert np.all(ratio < 0.99)
  np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
  # ... and a loss that rises over the window raises it.
  rising = [1.0 + 0.1 * i for i in range(len(LOSSES))]
  _, ref = _run(ls.learned_schedule_adam(theta, LR, steps), rising)
  _, got = _run(cs.context_schedule_chain(
      _with_context(theta, rate=[0.0, 0.0, 0.8]), LR, steps), rising)
  assert np.all(got[w:] / ref[w:] > 1.01)


def test_knot_offsets_move_the_knots():
  theta = _trained()
  steps = 35  # 5 steps per knot interval: step 5k sits on knot k
  d = np.zeros((8, cs.NUM_CONTEXT), np.float32)
  d[2, 0] = 1.0  # knot 2 moves with the budget feature
  plain = _with_context(theta)
  _, ref = _run(cs.context_schedule_chain(plain, LR, steps), LOSSES)
  _, got = _run(cs.context_schedule_chain(
      _with_context(theta, knots=d), LR, steps), LOSSES)
  c = cs.budget_feature(steps)
  np.testing.assert_allclose(got[10] / ref[10], math.exp(c), rtol=1e-5)
  np.testing.assert_array_equal(got[:6], ref[:6])  # up to knot 1: as was
  assert abs(got[8] / ref[8] - 1) > 1e-3  # between knots 1 and 2: moved


def test_shapes_and_arguments_are_checked():
  theta = _trained()
  with pytest.raises(ValueError, match="'context'"):
    cs.context_schedule_scale(theta, LR, 100)
  bad = _with_context(theta, rate=[0.0, 0.0])
  with pytest.raises(ValueError, match="context"):
    cs.context_schedule_scale(bad, LR, 100)
  with pytest.raises(ValueError, match="window_fraction"):
    cs.context_schedule_scale(_with_context(theta), LR, 100,
                              window_fraction=1.0)
  with pytest.raises(ValueError, match="optimizer"):
    cs.context_schedule_chain(_with_context(theta), LR, 100,
                              optimizer="rmsprop")
  tx = cs.context_schedule_scale(_with_context(theta), LR, 100)
  s = tx.init({"w": jnp.zeros(3)})
  with pytest.raises(TypeError, match="value="):
    tx.update({"w": jnp.ones(3)}, s)


def test_kind_builds_and_warm_starts_it(tmp_path):
  config = kind.config(base_lr=0.002, optimizer="adam", context=True)
  theta = learned.get("learned_schedule").init(jax.random.key(0), config)
  assert not np.any(theta["context"]["knots"])
  start = warm_start(theta, "pretrained:learned_schedule_adam", config)
  shipped = _trained()
  np.testing.assert_array_equal(start["knots"], shipped["knots"])
  np.testing.assert_array_equal(start["feedback"]["w2"],
                                shipped["feedback"]["w2"])
  assert not np.any(start["context"]["rate"])
  # Saved and rebuilt, untrained context: the shipped controller's rates.
  learned.save(str(tmp_path / "c"), start, config)
  saved = learned.load(str(tmp_path / "c"))
  _, got = _run(saved.frozen(100, learning_rate=LR).optimizer, LOSSES)
  _, ref = _run(pretrained.frozen("learned_schedule_adam", 100,
                                  learning_rate=LR).optimizer, LOSSES)
  np.testing.assert_array_equal(got, ref)
  # A config without context is saved as before, without its keys.
  assert "context" not in kind.config(base_lr=0.05)
  with pytest.raises(ValueError, match="optimizer"):
    warm_start(theta, "pretrained:learned_schedule_sgd", config)


def test_controller_contract():
  theta = _with_context(_trained(), rate=[0.2, 0.1, -0.3],
                        knots=np.full((8, cs.NUM_CONTEXT), 0.1))
  check_controller_contract(lambda: cs.context_schedule_chain(
      theta, LR, 20, window_fraction=0.2))
  check_controller_contract(
      lambda: cs.context_schedule_chain(theta, LR, 20),
      inject=lambda: optax.inject_hyperparams(
          lambda learning_rate: cs.context_schedule_chain(
              theta, learning_rate, 20))(learning_rate=LR))


def test_size_weight_scales_the_rate_by_the_parameter_count():
  theta = _with_context(_trained(), rate=[0.0, 0.5, 0.0])
  plain = _with_context(_trained())
  rates = {}
  for n in (500, 4000, 32000):
    p = {"w": jnp.ones((n,), jnp.float32)}
    g = {"w": jnp.full((n,), 0.1, jnp.float32)}
    tx, ref = (cs.context_schedule_chain(t, LR, 100) for t in (theta, plain))
    _, s = tx.update(g, tx.init(p), p, value=jnp.float32(2.3))
    _, s_ref = ref.update(g, ref.init(p), p, value=jnp.float32(2.3))
    rates[n] = float(applied_learning_rate(s)) / float(
        applied_learning_rate(s_ref))
    np.testing.assert_allclose(
        rates[n], math.exp(math.tanh(0.5 * cs.size_feature(n))), rtol=1e-5)
  assert rates[500] < 1.0 < rates[32000]
  assert rates[4000] == pytest.approx(1.0)


@pytest.mark.slow
def test_meta_training_moves_the_context_alone(tmp_path):
  """``small_adam_aware``'s settings on the debug family: it starts at the
  shipped Adam schedule with zero context, and ES on ``context`` leaves
  the knots and the feedback as shipped."""
  from lrmeta.experiments import family_loop
  from lrmeta.experiments.config import load_config
  aware = load_config("configs/learned_lr.py:small_adam_aware")
  cfg = load_config("configs/learned_lr.py:debug")
  cfg.unlock()
  cfg.controller.update({k: aware.controller[k] for k in (
      "optimizer", "base_lr", "context", "window_fraction", "init_from")})
  cfg.meta.perturb = aware.meta.perturb
  cfg.meta.meta_steps, cfg.meta.eval_every = 2, 2
  mt = family_loop.meta_train_family(cfg, tmp_path, quiet=True)
  shipped = _trained()
  for th in (mt["theta0"], mt["theta"]):
    np.testing.assert_array_equal(th["knots"], shipped["knots"])
    jax.tree.map(np.testing.assert_array_equal, th["feedback"],
                 shipped["feedback"])
  assert not np.any(mt["theta0"]["context"]["rate"])
  assert np.any(mt["theta"]["context"]["rate"])
