"""MLR-SNet as its authors built it: the cell's width, semantics and init,
reading torch files without torch, the import of their nets with the
meta-test protocol against a PyTorch reference, old checkpoints, gamma over
a split."""

from __future__ import annotations

import json
import pathlib
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrmeta import learned
from lrmeta.controllers.mlr_snet import (MLRSNetState, compute_gamma,
                                         init_mlr_snet_params, mlr_snet,
                                         mlr_snet_cell, num_params)
from lrmeta.learned import mlr_snet as kind
from lrmeta.learned import torch_pickle
from lrmeta.train import init_state, train_step, with_split_loss
from script_module import load_script

FIXTURE = pathlib.Path(__file__).parent / "data" / "mlrsnet_parity"
SNAPSHOTS = [str(FIXTURE / f"s{i}.pth") for i in range(3)]


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def _numpy_cell(theta, loss, h, c, semantics):
  """The two cells' equations, written out (network.py / module.py)."""
  t = jax.tree.map(np.asarray, theta)
  mlp = lambda p, x: np.maximum(x @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
  z = mlp(t["i2h"], np.array([loss])) + mlp(t["h2h"], h)
  a, b, u, v = np.split(z, 4)
  if semantics == "meta_test":
    c = _sigmoid(b) * c + _sigmoid(a) * np.tanh(u)
    h = _sigmoid(v) * np.tanh(c)
  else:
    c = _sigmoid(b - 1) * c + _sigmoid(a) * np.tanh(v)
    h = _sigmoid(u) * np.tanh(c)
  return h, c, _sigmoid(h @ t["out"]["w"] + t["out"]["b"])[0]


def _rates(tx, losses):
  p = {"w": jnp.zeros(2)}

  def body(s, loss):
    _, s = tx.update({"w": jnp.ones(2)}, s, p, value=loss)
    ctl = s if isinstance(s, MLRSNetState) else s[-1]  # mlr_snet_sgd: last
    return s, ctl.learning_rate

  _, r = jax.lax.scan(body, tx.init(p), jnp.asarray(losses, jnp.float32))
  return np.asarray(r, np.float64)


def test_default_cell_is_the_authors():
  th = init_mlr_snet_params(jax.random.key(0))
  assert num_params(th) == 11_776  # width 25 at hidden 50
  assert th["i2h"]["w1"].shape == (1, 25) and th["h2h"]["w2"].shape == (25,
                                                                        200)
  assert num_params(init_mlr_snet_params(jax.random.key(0), width=50)) == (
      23_101)
  # PyTorch's nn.Linear default: |w|, |b| <= 1 / sqrt(fan_in), biases random.
  for p, fan_in in ((th["h2h"]["w1"], 50), (th["h2h"]["b1"], 50),
                    (th["i2h"]["w2"], 25), (th["i2h"]["b1"], 1)):
    bound = 1 / np.sqrt(fan_in)
    assert float(jnp.abs(p).max()) <= bound
    assert float(jnp.abs(p).max()) > 0.8 * bound
  uni = init_mlr_snet_params(jax.random.key(0), init="uniform")
  assert float(jnp.abs(uni["h2h"]["w2"]).max()) <= 0.1
  assert not any(float(jnp.abs(uni[g]["b1"]).max()) for g in ("i2h", "h2h"))


@pytest.mark.parametrize("semantics", ["meta_test", "meta_train"])
def test_cell_matches_the_equations(semantics):
  th = init_mlr_snet_params(jax.random.key(1), hidden=6)
  h = c = np.zeros(6)
  hj = cj = jnp.zeros(6)
  for loss in (2.3, 1.1, 0.4):
    h, c, out = _numpy_cell(th, loss, h, c, semantics)
    hj, cj, outj = mlr_snet_cell(th, jnp.asarray(loss), hj, cj, semantics)
    np.testing.assert_allclose(outj, out, rtol=1e-5)
    np.testing.assert_allclose(cj, c, rtol=1e-5, atol=1e-6)
  other = {"meta_test": "meta_train", "meta_train": "meta_test"}[semantics]
  assert abs(float(mlr_snet_cell(th, jnp.asarray(0.4), hj, cj, other)[2])
             - float(mlr_snet_cell(th, jnp.asarray(0.4), hj, cj,
                                   semantics)[2])) > 1e-4


def test_torch_files_read_without_torch(tmp_path):
  legacy = torch_pickle.load(SNAPSHOTS[0])
  zipped = torch_pickle.load(str(FIXTURE / "s0_zip.pth"))
  assert list(legacy) == list(kind.TORCH_KEYS)
  assert legacy["layer1.fc_h2h.0.weight"].shape == (4, 8)  # [out, in]
  for k in legacy:
    np.testing.assert_array_equal(legacy[k], zipped[k])
  th = kind.theta_from_state_dict(legacy)  # [in, out], exact
  np.testing.assert_array_equal(th["h2h"]["w1"],
                                legacy["layer1.fc_h2h.0.weight"].T)
  with pytest.raises(ValueError, match="missing"):
    kind.theta_from_state_dict({k: v for k, v in legacy.items()
                                if k != "layer3.bias"})
  wrong = dict(legacy, **{"layer3.weight": np.zeros((1, 7), np.float32)})
  with pytest.raises(ValueError, match="shape"):
    kind.theta_from_state_dict(wrong)
  # A pickle that names anything else is refused, not run.
  bad = tmp_path / "bad.pth"
  with open(bad, "wb") as f:
    for obj in (torch_pickle.LEGACY_MAGIC, 1001, {"little_endian": True}):
      pickle.dump(obj, f, protocol=2)
    f.write(b"cos\nsystem\n(S'true'\ntR.")
  with pytest.raises(pickle.UnpicklingError, match="refusing"):
    torch_pickle.load(str(bad))


@pytest.mark.parametrize("semantics", ["meta_test", "meta_train"])
def test_imported_nets_match_pytorch(tmp_path, capsys, semantics):
  """scripts/import_mlrsnet.py -> saved controller -> rates over 1,200 steps
  equal those of the PyTorch reference (scripts/make_mlrsnet_fixture.py):
  three snapshots switched at n // 3 and 2 * (n // 3), LSTM state carried,
  gamma from the loss at step 0 and at each switch."""
  out = tmp_path / "imported"
  load_script("import_mlrsnet").main(SNAPSHOTS + ["--out", str(out),
                                                  "--semantics", semantics])
  last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert last["num_params"] == 373 and last["snapshots"] == 3
  assert [x["sha256"] for x in last["inputs"]] == [kind.sha256(p)
                                                   for p in SNAPSHOTS]
  losses = np.load(FIXTURE / "losses.npy")
  want = np.load(FIXTURE / f"rates_{semantics}.npy")
  assert len(losses) >= 1000
  frozen = learned.frozen(str(out), len(losses))
  got = _rates(frozen.optimizer, losses)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # The LSTM state is carried: restarting it at the switch changes the rate.
  saved = learned.load(str(out))
  s2 = kind.snapshots(saved.theta)[1]
  n = len(losses)
  fresh = _rates(mlr_snet(s2, num_classes=10, semantics=semantics),
                 losses[n // 3:])
  assert abs(fresh[0] - want[n // 3]) > 1e-6 * want[n // 3]


def test_switch_steps_thirds():
  assert kind.switch_steps((1 / 3, 2 / 3), 430, rule="thirds") == (143, 286)
  assert kind.switch_steps((1 / 3, 2 / 3), 431, rule="thirds") == (143, 286)
  # 200 steps = 20 epochs of 10: switch at epochs 6 and 12.
  assert kind.switch_steps((1 / 3, 2 / 3), 200, rule="thirds",
                           steps_per_epoch=10) == (60, 120)
  with pytest.raises(ValueError, match="too few"):
    kind.switch_steps((1 / 3, 2 / 3), 20, rule="thirds", steps_per_epoch=10)


def test_config_records_width_and_semantics(tmp_path):
  cfg = kind.config(hidden=8, width=3, semantics="meta_train", init="uniform",
                    num_classes=10, gamma=None, momentum=0.0,
                    weight_decay=0.0)
  th = kind.CONTROLLER.init(jax.random.key(0), cfg)
  assert th["h2h"]["w1"].shape == (8, 3)
  learned.save(str(tmp_path / "c"), th, cfg)
  back = learned.load(str(tmp_path / "c"))
  assert back.config["width"] == 3
  assert back.config["semantics"] == "meta_train"
  _assert_meta_train_rates(back, th, hidden=8, losses=[2.0, 1.5, 1.0])


def _assert_meta_train_rates(saved, theta, hidden, losses):
  """The saved controller's rates are gamma times the meta_train cell's
  output, written out in numpy, on ``losses`` (gamma from the first)."""
  losses = np.asarray(losses, np.float32)
  got = _rates(saved.frozen(len(losses)).optimizer, losses)
  h = c = np.zeros(hidden)
  g = float(compute_gamma(float(losses[0]), 10))
  for t, loss in enumerate(losses):
    h, c, out = _numpy_cell(theta, loss, h, c, "meta_train")
    np.testing.assert_allclose(got[t], g * out, rtol=1e-5)


def test_old_checkpoint_loads(tmp_path):
  """A controller saved before width / semantics / init were recorded:
  gate-MLP width = hidden, meta_train semantics."""
  old = init_mlr_snet_params(jax.random.key(2), hidden=6, width=6,
                             init="uniform")
  old_cfg = {"controller": "mlr_snet", "hidden": 6, "num_classes": 10,
             "gamma": None, "momentum": 0.0, "weight_decay": 0.0,
             "switch_fractions": []}
  learned.save(str(tmp_path / "old"), old, old_cfg)
  saved = learned.load(str(tmp_path / "old"))
  init = saved.controller.init(jax.random.key(0), saved.config)
  assert jax.tree.map(jnp.shape, init) == jax.tree.map(jnp.shape, old)
  _assert_meta_train_rates(saved, old, hidden=6, losses=[2.3, 1.0, 0.5])


def test_gamma_over_a_split(fmnist_task):
  """gamma_from="split": the eval-mode loss over (500 examples of) the
  training split before step 0 and before the switch step, not the
  minibatch loss."""
  ths = [init_mlr_snet_params(jax.random.key(i), hidden=4) for i in range(2)]
  n_ex = 500
  tx = mlr_snet(ths, switch_steps=(2,), num_classes=10, gamma_from="split")
  signals = with_split_loss((0, 2), "train", n_ex)
  state = init_state(fmnist_task, tx, jax.random.key(0))
  step = jax.jit(lambda s: train_step(fmnist_task, tx, s, signals))
  gammas, losses = [], []
  for _ in range(3):
    full = fmnist_task.evaluate(state.params, state.model_state, "train",
                                n_ex)["loss"]
    state, m = step(state)
    gammas.append(float(state.opt_state.gamma))
    losses.append((float(full), float(m["train_loss"])))
  np.testing.assert_allclose(gammas[0], compute_gamma(losses[0][0], 10),
                             rtol=1e-5)
  np.testing.assert_allclose(gammas[1], gammas[0])  # kept between switches
  np.testing.assert_allclose(gammas[2], compute_gamma(losses[2][0], 10),
                             rtol=1e-5)
  # ... and not from the minibatch.
  assert abs(gammas[0] - float(compute_gamma(losses[0][1], 10))) > 1e-4
  with pytest.raises(TypeError, match="gamma_loss"):
    p = {"w": jnp.ones(2)}
    tx.update(p, tx.init(p), p, value=jnp.asarray(1.0))


@pytest.mark.parametrize("kwargs,match", [
    ({"semantics": "pytorch"}, "semantics"),
    ({"gamma_from": "epoch"}, "gamma_from"),
])
def test_bad_cell_arguments(kwargs, match):
  th = init_mlr_snet_params(jax.random.key(0), hidden=4)
  with pytest.raises(ValueError, match=match):
    mlr_snet(th, **kwargs)
  with pytest.raises(ValueError, match="init"):
    init_mlr_snet_params(jax.random.key(0), hidden=4, init="xavier")
  with pytest.raises(ValueError, match="width"):
    init_mlr_snet_params(jax.random.key(0), hidden=4, width=0)
