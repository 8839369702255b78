"""scripts/bench_vs_pytorch.py: both sides compute the same thing."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed "
                            "(pip install -e '.[bench]')")

from lrmeta.controllers import (hd_adam, hd_sgd,  # noqa: E402
                                init_mlr_snet_params)
from lrmeta.controllers.mlr_snet import mlr_snet_cell  # noqa: E402
from lrmeta.tasks import make_task  # noqa: E402
from lrmeta.train.state import init_state, train_step  # noqa: E402
from script_module import SCRIPTS, load_script  # noqa: E402


@pytest.fixture(scope="module")
def bench():
  return load_script("bench_vs_pytorch")


@pytest.fixture(scope="module")
def mlp_task(fmnist_small):
  return make_task("fashion_mnist", "mlp", batch_size=16, data=fmnist_small,
                   model_kwargs={"hidden": (8,)})


@pytest.mark.parametrize("adam", [False, True])
def test_torch_hd_takes_lrmetas_steps(bench, mlp_task, adam):
  """Same weights, same batches: after 4 steps the PyTorch HD rule holds
  lrmeta's parameters and rate (the rate has moved from its start)."""
  opt = hd_adam(1e-3, 1e-4) if adam else hd_sgd(0.05, 0.05)
  state = init_state(mlp_task, opt, jax.random.key(0))
  model = bench.torch_mlp(state.params, 784, hidden=(8,))
  topt = bench.torch_hd(model.parameters(), lr=1e-3 if adam else 0.05,
                        hyper_lr=1e-4 if adam else 0.05, adam=adam)
  for _ in range(4):
    batch = mlp_task.train_batch(jax.random.fold_in(state.key, state.step))
    state, _ = train_step(mlp_task, opt, state)
    x = torch.from_numpy(np.array(batch.image).reshape(16, -1))
    loss = torch.nn.functional.cross_entropy(
        model(x), torch.from_numpy(np.array(batch.label, np.int64)))
    topt.zero_grad()
    loss.backward()
    topt.step()
  lr = float(state.opt_state.learning_rate)
  assert lr != pytest.approx(1e-3 if adam else 0.05, rel=1e-3)
  assert topt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-4)
  w = state.params["Dense_0"]["kernel"]
  np.testing.assert_allclose(model[0].weight.detach().numpy().T, w,
                             atol=1e-5)


@pytest.mark.parametrize("semantics", [None, "meta_train"])
def test_torch_mlr_snet_cell_matches(bench, semantics):
  """The PyTorch cell is lrmeta's, at the default width and semantics (and
  under the authors' meta-train cell)."""
  theta = init_mlr_snet_params(jax.random.key(3))
  kw = {} if semantics is None else {"semantics": semantics}
  cell = bench.torch_mlr_snet(theta, **kw)
  h = c = jax.numpy.zeros(50)
  for loss in (2.3, 1.7, 0.9):
    h, c, out = mlr_snet_cell(theta, loss, h, c, **kw)
    with torch.no_grad():
      t_out = cell(torch.tensor(loss))
    assert float(t_out) == pytest.approx(float(out), abs=1e-6)
  np.testing.assert_allclose(cell.h.numpy(), h, atol=1e-6)


@pytest.mark.slow
def test_reduced_run_prints_json_with_equal_first_losses():
  """Every row's two sides start from the same loss on the same weights."""
  root = pathlib.Path(__file__).resolve().parents[1]
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join(
                 [str(root), os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.run(
      [sys.executable, str(SCRIPTS / "bench_vs_pytorch.py"), "--reduced"],
      capture_output=True, text=True, env=env, cwd=root, timeout=800,
      check=True)
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  bench_rows = set(load_script("bench_vs_pytorch").ROWS)
  assert set(out["lrmeta_over_torch"]) == bench_rows
  for key in ("lrmeta_steps_per_s", "torch_steps_per_s", "first_loss",
              "cores_busy"):
    assert set(out[key]) == bench_rows, key
  assert all(r > 0 and np.isfinite(r)
             for r in out["lrmeta_over_torch"].values())
  for row, (l_loss, t_loss) in out["first_loss"].items():
    assert abs(l_loss - t_loss) < 1e-4, row
  assert out["threads"]["torch"] == out["threads"]["xla_cpus"]
  assert out["mode"] == "reduced"
