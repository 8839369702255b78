"""A diverging run is isolated and reported, in a population and alone."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.tasks import make_task
from lrmeta.train import (NEVER_DIVERGED, History, train, train_population,
                          train_reference)

STEPS = 12
EVAL_EVERY = 6
BAD_LR = 1e3


@pytest.fixture(scope="module")
def mlp_task(fmnist_small):
  return make_task("fashion_mnist", "mlp", batch_size=16, data=fmnist_small,
                   model_kwargs={"hidden": (16,)})


def _sgd(lr):
  return optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=0.9)


def _population(task, lrs, **kw):
  keys = jax.random.split(jax.random.key(7), len(lrs))
  return train_population(task, lambda h: _sgd(h["lr"]),
                          {"lr": jnp.asarray(lrs, jnp.float32)}, keys, STEPS,
                          eval_every=EVAL_EVERY, eval_examples=64,
                          **{"progress": False, **kw}), keys


def _check_diverged_at(loss, finite, d):
  """``d`` is the first non-finite step; the run stays non-finite after it."""
  assert 0 <= d < STEPS
  assert np.isfinite(loss[:d]).all() and finite[:d].all()
  assert not finite[d]
  assert not np.isfinite(loss[d + 1:]).any()


@pytest.fixture(scope="module")
def population(mlp_task):
  return _population(mlp_task, [BAD_LR, 0.05, 0.1])


def test_population_reports_the_diverged_member(population):
  (_, hist), _ = population
  d = hist.diverged_at
  assert d.shape == (3,) and d.dtype.kind == "i"
  _check_diverged_at(hist.steps["train_loss"][0], hist.steps["finite"][0],
                     int(d[0]))
  np.testing.assert_array_equal(d[1:], [NEVER_DIVERGED] * 2)
  np.testing.assert_array_equal(hist.finite(), [False, True, True])
  assert hist.num_diverged == 1
  assert np.isfinite(hist.steps["train_loss"][1:]).all()
  # Divergence follows the members through slicing.
  np.testing.assert_array_equal(hist.select([1, 2]).diverged_at, [-1, -1])
  assert int(hist.select(0).diverged_at) == int(d[0])
  assert hist.select(hist.finite()).num_diverged == 0
  # A History sliced by hand from the steps keeps it as well.
  rows = np.array([0, 2])
  hand = History({k: v[rows] for k, v in hist.steps.items()}, hist.eval_steps,
                 {k: v[rows] for k, v in hist.evals.items()}, hist.wall_time)
  np.testing.assert_array_equal(hand.diverged_at, d[rows])


def test_sane_members_are_untouched(mlp_task, population):
  """Same program with a sane rate in the first slot: others bit-identical."""
  (st, hist), keys = population
  (st_ok, hist_ok), _ = _population(mlp_task, [0.05, 0.05, 0.1])
  assert hist_ok.num_diverged == 0
  for a, b in zip(jax.tree.leaves(st.params), jax.tree.leaves(st_ok.params)):
    np.testing.assert_array_equal(np.asarray(a)[1:], np.asarray(b)[1:])
  for k in hist.steps:
    np.testing.assert_array_equal(hist.steps[k][1:], hist_ok.steps[k][1:])
  for k in hist.evals:
    np.testing.assert_array_equal(hist.evals[k][1:], hist_ok.evals[k][1:])
  # And a sane member run alone agrees (vmap may reorder float operations).
  s1, h1 = train(mlp_task, _sgd(0.05), keys[1], STEPS, eval_every=EVAL_EVERY,
                 eval_examples=64, progress=False)
  assert int(h1.diverged_at) == NEVER_DIVERGED
  for a, b in zip(jax.tree.leaves(st.params), jax.tree.leaves(s1.params)):
    np.testing.assert_allclose(np.asarray(a)[1], b, rtol=2e-5, atol=2e-5)


def test_single_run_and_reference_report_divergence(mlp_task):
  key = jax.random.key(3)
  _, hist = train(mlp_task, _sgd(BAD_LR), key, STEPS, eval_every=EVAL_EVERY,
                  eval_examples=64, progress=False)
  _, ref = train_reference(mlp_task, _sgd(BAD_LR), key, STEPS)
  assert hist.diverged_at.shape == () and ref.diverged_at.shape == ()
  _check_diverged_at(hist.steps["train_loss"], hist.steps["finite"],
                     int(hist.diverged_at))
  assert int(ref.diverged_at) == int(hist.diverged_at)
  assert hist.num_diverged == 1 and not hist.finite()
  _, ok = train_reference(mlp_task, _sgd(0.05), key, 3)
  assert int(ok.diverged_at) == NEVER_DIVERGED and ok.num_diverged == 0


def test_non_finite_parameters_count_without_a_non_finite_loss(mlp_task):
  """An update that makes the parameters NaN marks its own step."""
  def poison_at(step):
    def init(params):
      del params
      return jnp.zeros((), jnp.int32)

    def update(updates, count, params=None, **extra):
      del params, extra
      bad = count == step
      updates = jax.tree.map(lambda u: jnp.where(bad, jnp.nan, u), updates)
      return updates, count + 1
    return optax.GradientTransformationExtraArgs(init, update)

  opt = optax.chain(_sgd(0.05), poison_at(4))
  _, hist = train(mlp_task, opt, jax.random.key(0), 8, eval_every=8,
                  eval_examples=64, progress=False)
  # Step 4's loss was computed before its update: finite, yet step 4 is the
  # first with non-finite parameters.
  assert np.isfinite(hist.steps["train_loss"][4])
  assert int(hist.diverged_at) == 4


def test_progress_bar_counts_diverged_and_averages_the_rest(mlp_task, capsys):
  (_, hist), _ = _population(mlp_task, [BAD_LR, 0.05, 0.1], progress=True)
  err = capsys.readouterr().err
  assert "diverged=1/3" in err
  # The last postfix averages the finite members only.
  losses = re.findall(r"loss=([^,\]\s]+)", err)
  want = f"{np.mean(hist.steps['train_loss'][1:, -1]):.3f}"
  assert losses and losses[-1] == want, (losses, want)
  accs = re.findall(r"test_acc=([^,\]\s]+)", err)
  assert accs[-1] == f"{np.mean(hist.evals['test_acc'][1:, -1]):.3f}"
