"""The compare path: tuning picks the grid's best validation rate and widens
past an edge, the two executors agree, paired intervals match a hand
computation."""

import numpy as np
import optax
import pytest

from lrmeta.protocol import (Method, Protocol, compare, fixed, grid_rate,
                             paired_difference, verdict)
from lrmeta.tasks import make_task


def test_paired_difference_matches_hand_computation():
  a = [0.80, 0.82, 0.79, 0.85]
  b = [0.78, 0.80, 0.80, 0.81]
  # d = [0.02, 0.02, -0.01, 0.04]: mean 0.0175, sample std 0.0206155,
  # t(0.975, 3) = 3.182446, half-width 3.182446 * 0.0206155 / 2 = 0.0328039.
  d = paired_difference(a, b)
  assert d["n"] == 4
  assert d["mean"] == pytest.approx(0.0175, abs=1e-12)
  assert d["ci_low"] == pytest.approx(0.0175 - 0.0328039, abs=1e-6)
  assert d["ci_high"] == pytest.approx(0.0175 + 0.0328039, abs=1e-6)
  one = paired_difference([1.0], [0.5])
  assert one["mean"] == 0.5 and np.isnan(one["ci_low"])
  assert verdict(d) == "tie"
  assert verdict(paired_difference([1, 2, 3], [0, 0.5, 1])) == "better"
  assert verdict(paired_difference([0, 0.5, 1], [1, 2, 3])) == "worse"


@pytest.fixture(scope="module")
def mlp_task(fmnist_small):
  return make_task("fashion_mnist", "mlp", batch_size=32, data=fmnist_small,
                   model_kwargs={"hidden": (16,)})


def _sgd(lr):
  return optax.inject_hyperparams(optax.sgd)(learning_rate=lr)


def test_tuning_picks_the_best_validation_rate_and_tests_it(mlp_task):
  grid = (1e-4, 0.1, 0.5)
  p = Protocol(30, grid, (0, 1), (2, 3), eval_every=30, eval_examples=500)
  r = compare(mlp_task, {"sgd": Method(_sgd)}, p, quiet=True)["sgd"]
  # The evaluated rates: the grid, plus any widening past its top edge.
  rates = [grid_rate(grid, k) for k in range(len(r.grid_val_acc))]
  assert r.lr == rates[int(np.argmax(r.grid_val_acc))] and r.lr != 1e-4
  assert r.seeds == (2, 3) and r.hist.final("test_acc").shape == (2,)
  # The test runs are the chosen rate on the test seeds: the same numbers
  # as that rate as a fixed method.
  f = compare(mlp_task, {"fixed": fixed(_sgd(r.lr))}, p, quiet=True)["fixed"]
  assert f.lr is None and f.grid_val_acc == []
  np.testing.assert_allclose(r.hist.final("test_acc"),
                             f.hist.final("test_acc"), atol=1e-6)
  np.testing.assert_allclose(r.hist.steps["train_loss"],
                             f.hist.steps["train_loss"], rtol=1e-5)


def test_the_grid_widens_past_its_edge_by_its_edge_ratio():
  grid = (0.01, 0.03, 0.1)
  assert grid_rate(grid, 3) == pytest.approx(0.1 * 0.1 / 0.03)
  assert grid_rate(grid, -2) == pytest.approx(0.01 / 3**2)
  with pytest.raises(ValueError, match="increasing"):
    Protocol(20, (0.1, 0.05), (0,), (1,))


def test_population_and_sequential_executors_agree(mlp_task):
  kw = dict(eval_examples=500)
  pop = compare(mlp_task, {"sgd": Method(_sgd)},
                Protocol(20, (0.05, 0.2), (3,), (4, 5), eval_every=20, **kw),
                quiet=True)["sgd"]
  seq = compare(mlp_task, {"sgd": Method(_sgd)},
                Protocol(20, (0.05, 0.2), (3,), (4, 5), num_evals=1,
                         executor="sequential", **kw), quiet=True)["sgd"]
  assert pop.lr == seq.lr
  np.testing.assert_allclose(pop.grid_val_acc, seq.grid_val_acc, atol=2e-3)
  np.testing.assert_allclose(pop.hist.final("test_acc"),
                             seq.hist.final("test_acc"), atol=2e-3)
  np.testing.assert_allclose(pop.hist.steps["lr"], seq.hist.steps["lr"],
                             rtol=1e-6)
  with pytest.raises(ValueError, match="executor"):
    Protocol(20, (), (), (0,), executor="threads")
