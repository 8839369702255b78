"""scripts/hypergradient_drift.py: the drift it records is g_t . g_{t-1}."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest

from lrmeta.tasks import make_task
from lrmeta.train.state import init_state
from script_module import load_script


@pytest.fixture(scope="module")
def drift_script():
  return load_script("hypergradient_drift")


@pytest.fixture(scope="module")
def mlp_task(fmnist_small):
  return make_task("fashion_mnist", "mlp", batch_size=16, data=fmnist_small,
                   model_kwargs={"hidden": (16,)})


@pytest.mark.slow
@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_drift_is_dot_product_of_consecutive_gradients(drift_script, mlp_task,
                                                     clip):
  """Against plain SGD written out here: same batches, same parameters."""
  rates, seeds, steps = [0.05, 0.4], [3], 5
  drift, val = drift_script.frozen_rate_drift(mlp_task, rates, seeds, steps,
                                           clip, chunk=2, progress=False)
  assert drift.shape == (2, 1, steps) and val.shape == (2, 1)
  for i, lr in enumerate(rates):
    s = init_state(mlp_task, optax.sgd(lr), jax.random.key(seeds[0]))
    params, prev, expected = s.params, None, []
    for t in range(steps):
      batch = mlp_task.train_batch(jax.random.fold_in(s.key, t))
      g = jax.grad(lambda p: mlp_task.loss(p, s.model_state, batch)[0])(params)
      if clip > 0:
        norm = optax.tree.norm(g)
        g = jax.tree.map(lambda x: x * min(1.0, clip / float(norm)), g)
      expected.append(0.0 if prev is None else float(optax.tree.vdot(g, prev)))
      params = jax.tree.map(lambda p, x: p - lr * x, params, g)
      prev = g
    np.testing.assert_allclose(drift[i, 0], expected, rtol=2e-4, atol=1e-6)


def test_fixed_point_interpolates_the_sign_change(drift_script):
  fp = drift_script.fixed_point
  # Geometric midpoint when the drift is symmetric around the change.
  assert fp([0.1, 1.0], [1.0, -1.0]) == pytest.approx(np.sqrt(0.1))
  assert fp([0.1, 1.0, 10.0], [2.0, 1.0, -1.0]) == pytest.approx(np.sqrt(10))
  assert fp([0.1, 1.0], [-1.0, -2.0]) == 0.0
  assert fp([0.1, 1.0], [1.0, 0.5]) == float("inf")


@pytest.mark.slow
def test_tiny_run_writes_table_and_json(drift_script, tmp_path, capsys):
  drift_script.main(["--tiny", "--quiet", "--out", str(tmp_path),
                  "--batch_sizes", "16", "--rates", "0.01", "3.0"])
  last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert set(last) == {"fixed_point", "lr_star"}
  assert len(last["fixed_point"]["16"]) == 3
  for f in ("drift.md", "drift.png", "drift.json"):
    assert (tmp_path / f).stat().st_size > 0
