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


def test_torch_mlr_snet_meta_train_takes_lrmetas_steps(bench, mlp_task):
  """Same weights, same minibatches and meta batches: after two calls of
  lrmeta's ``OnlineLookahead`` (look-ahead every 2 steps; three real steps,
  two look-aheads) the PyTorch protocol holds lrmeta's LSTM and network
  weights, and the LSTM has moved from its start."""
  from lrmeta.controllers import mlr_snet_sgd
  from lrmeta.meta import (MetaTrainer, OnlineLookahead, TaskProblem,
                           default_meta_optimizer)
  theta = init_mlr_snet_params(jax.random.key(1))
  problem = TaskProblem(
      mlp_task, lambda th: mlr_snet_sgd(th, momentum=0.0, weight_decay=5e-4),
      meta_batch_size=16, meta_train_mode=True)
  trainer = MetaTrainer([OnlineLookahead(problem, horizon=100, every=2)],
                        default_meta_optimizer(1e-3, 1e-4), clip_norm=None)
  ms = trainer.init(theta, jax.random.key(0))
  s0 = jax.tree.map(lambda a: a[0], ms.estimator_states[0].inner)
  step = jax.jit(trainer.step)
  for _ in range(2):
    ms, _ = step(ms)
  inner = jax.tree.map(lambda a: a[0], ms.estimator_states[0].inner)
  assert int(inner.step) == 3

  model = bench.torch_mlp(s0.params, 784, hidden=(8,))
  learner = bench.TorchMLRSNetMetaTrain(model, bench.torch_mlr_snet(theta))

  def tensors(batch):
    return (torch.from_numpy(np.array(batch.image).reshape(
        batch.image.shape[0], -1)),
            torch.from_numpy(np.array(batch.label, np.int64)))

  def batches(t):
    train = mlp_task.train_batch(jax.random.fold_in(s0.key, t))
    meta_key = jax.random.fold_in(jax.random.fold_in(s0.key, t + 1), 2)
    return tensors(train), tensors(mlp_task.val_batch(meta_key, 16))

  for t in range(3):
    train, meta = batches(t)
    learner.step(*train, meta if (t + 1) % 2 == 0 else None)
  train, meta = batches(3)
  learner.lookahead(*train, *meta)

  w = ms.theta["i2h"]["w1"]
  assert not np.allclose(w, theta["i2h"]["w1"], atol=1e-4)
  np.testing.assert_allclose(learner.cell.i2h[0].weight.detach().numpy().T,
                             w, atol=1e-5)
  np.testing.assert_allclose(learner.cell.out.weight.detach().numpy().T,
                             ms.theta["out"]["w"], atol=1e-5)
  np.testing.assert_allclose(model[0].weight.detach().numpy().T,
                             inner.params["Dense_0"]["kernel"], atol=1e-5)


@pytest.mark.slow
@pytest.mark.cifar10  # the ResNet-8 row trains on CIFAR-10
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
  assert "mlr_snet_meta_train_small_cnn" in bench_rows
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
