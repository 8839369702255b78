"""Inner loop: determinism, scan == reference loop, vmap == per-task runs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.controllers import (PolicyConfig, hd_sgd, init_actor,
                                init_mlr_snet_params, mlr_snet, rl_lr_policy)
from lrmeta.schedules import plateau_sgd
from lrmeta.train import (applied_learning_rate, init_population, init_state,
                          population_mesh, run_steps, shard_population, train,
                          train_population, train_reference,
                          with_validation_loss)


def _sgd(lr=0.05):
  return optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=0.9)


def _close(a, b, tol=2e-5):
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=tol,
                                                      atol=tol), a, b)


@pytest.mark.slow
def test_same_seed_same_params_different_seed_differs(fmnist_task):
  s1, _ = train(fmnist_task, _sgd(), jax.random.key(0), 6, eval_every=3,
                progress=False, eval_examples=100)
  s2, _ = train(fmnist_task, _sgd(), jax.random.key(0), 6, eval_every=3,
                progress=False, eval_examples=100)
  s3, _ = train(fmnist_task, _sgd(), jax.random.key(1), 6, eval_every=3,
                progress=False, eval_examples=100)
  jax.tree.map(np.testing.assert_array_equal, s1.params, s2.params)
  assert not np.allclose(s1.params["Dense_1"]["kernel"],
                         s3.params["Dense_1"]["kernel"])


def test_scan_equals_reference_loop(fmnist_task):
  s_scan, hist = train(fmnist_task, _sgd(), jax.random.key(3), 8,
                       eval_every=4, progress=False, eval_examples=100)
  s_ref, ref = train_reference(fmnist_task, _sgd(), jax.random.key(3), 8)
  _close(s_scan.params, s_ref.params)
  np.testing.assert_allclose(hist.steps["train_loss"],
                             ref.steps["train_loss"], rtol=1e-5)
  assert int(s_scan.step) == 8


@pytest.mark.slow
def test_vmap_population_equals_per_task_runs(fmnist_task):
  lrs = {"lr": jnp.array([0.01, 0.1, 0.03])}
  keys = jax.random.split(jax.random.key(5), 3)
  mk = lambda h: _sgd(h["lr"])
  pop, hist = train_population(fmnist_task, mk, lrs, keys, 6, eval_every=3,
                               progress=False, eval_examples=100)
  assert hist.steps["train_loss"].shape == (3, 6)
  assert hist.evals["val_acc"].shape == (3, 2)
  np.testing.assert_allclose(hist.steps["lr"][:, -1], [0.01, 0.1, 0.03],
                             rtol=1e-6)
  for i in range(3):
    s, h = train(fmnist_task, _sgd(float(lrs["lr"][i])), keys[i], 6,
                 eval_every=3, progress=False, eval_examples=100)
    _close(jax.tree.map(lambda x: x[i], pop.params), s.params)
    np.testing.assert_allclose(hist.evals["val_acc"][i], h.evals["val_acc"],
                               atol=1e-6)


@pytest.mark.slow
def test_loss_decreases_on_real_fashion_mnist(fmnist_task):
  _, hist = train(fmnist_task, _sgd(0.05), jax.random.key(0), 300,
                  eval_every=150, progress=False)
  loss = hist.steps["train_loss"]
  assert loss[:20].mean() > 1.5 * loss[-20:].mean()
  assert hist.evals["val_acc"][-1] > 0.6  # 10 classes: chance is 0.1


def test_applied_learning_rate_follows_schedule(fmnist_task):
  sched = optax.linear_schedule(0.1, 0.0, 10)
  opt = optax.inject_hyperparams(optax.sgd)(learning_rate=sched)
  _, hist = train(fmnist_task, opt, jax.random.key(0), 4, eval_every=4,
                  progress=False, eval_examples=50)
  np.testing.assert_allclose(hist.steps["lr"], [0.1, 0.09, 0.08, 0.07],
                             rtol=1e-5)
  # A chain without a recorded rate reports NaN rather than a made-up value.
  assert np.isnan(applied_learning_rate(optax.sgd(0.1).init({"w": 0.})))


def _constant_loss(task, state, batch, loss, logits):
  """A loss signal that never improves, so reduce-on-plateau cuts its scale."""
  del task, state, batch, loss, logits
  return {"value": jnp.float32(1.0)}


def _plateau(**kw):
  return optax.contrib.reduce_on_plateau(factor=0.5, patience=1, **kw)


def _rl_policy():
  cfg = PolicyConfig(steps_per_action=2, total_steps=6, hidden=(8,))
  return rl_lr_policy(init_actor(cfg, jax.random.key(0)), cfg)


def _mlr_snet():
  return mlr_snet(init_mlr_snet_params(jax.random.key(0)))


RATE_CHAINS = {
    "sgd_schedule": lambda: optax.inject_hyperparams(optax.sgd)(
        learning_rate=optax.exponential_decay(0.1, 1, 0.7)),
    "inject_sgd": lambda: optax.inject_hyperparams(optax.sgd)(
        learning_rate=0.05),
    "inactive_clip_sgd": lambda: optax.chain(
        optax.clip_by_global_norm(1e6),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.05)),
    "sgd_plateau": lambda: optax.chain(
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), _plateau()),
    "hd_sgd_plateau": lambda: optax.chain(hd_sgd(0.05), _plateau()),
    "plateau_sgd": lambda: plateau_sgd(0.1, momentum=0.0, factor=0.5,
                                       patience=1),
    "rl_policy": lambda: optax.chain(
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), _rl_policy()),
    "mlr_snet": lambda: optax.chain(optax.sgd(1.0), _mlr_snet()),
}


@pytest.mark.parametrize("name", list(RATE_CHAINS))
def test_recorded_rate_is_update_over_gradient_for_plain_sgd(
    fmnist_task, name):
  """For SGD chains without momentum, lr == |update| / |gradient| per step."""
  _, hist = train(fmnist_task, RATE_CHAINS[name](), jax.random.key(0), 6,
                  eval_every=6, progress=False, eval_examples=50,
                  signals=_constant_loss)
  lr = hist.steps["lr"]
  ratio = hist.steps["update_norm"] / hist.steps["grad_norm"]
  assert np.isfinite(lr).all()
  np.testing.assert_allclose(lr, ratio, rtol=1e-5)
  if "plateau" in name or name == "sgd_schedule":
    assert lr[-1] < 0.5 * lr[0]  # the cut (or decay) shows in the record


def test_plateau_scale_counts_once():
  """A scale already in a controller's recorded rate is not applied twice."""
  params = {"w": jnp.ones(3)}
  for tx, want in [
      (optax.chain(optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
                   _plateau()), 0.1 * 0.5 ** 4),
      (plateau_sgd(0.1, momentum=0.0, factor=0.5, patience=1),
       0.1 * 0.5 ** 4),
      (optax.inject_hyperparams(plateau_sgd)(learning_rate=0.1, momentum=0.0,
                                             factor=0.5, patience=1),
       0.1 * 0.5 ** 4),
      # A plateau scale without any recorded base rate is not a rate.
      (optax.chain(optax.sgd(0.1), _plateau()), np.nan)]:
    state = tx.init(params)
    for _ in range(5):  # the scale halves at every step after the first
      _, state = tx.update(params, state, params, value=1.0)
    np.testing.assert_allclose(applied_learning_rate(state), want, rtol=1e-6)


def test_extra_signals_reach_a_controller(fmnist_task):
  """reduce_on_plateau reads `value=`; the validation signal adds val_value."""
  seen = []

  def spy():
    def init(params):
      del params
      return optax.EmptyState()
    def update(updates, state, params=None, *, value, val_value, **extra):
      del params, extra
      seen.append((value, val_value))
      return updates, state
    return optax.GradientTransformationExtraArgs(init, update)

  opt = optax.chain(_sgd(), spy())
  state = init_state(fmnist_task, opt, jax.random.key(0))
  _, m = run_steps(fmnist_task, opt, state, 4,
                   signals=with_validation_loss(every=2))
  assert len(seen) == 1  # traced once inside scan
  assert m["train_loss"].shape == (4,)


@pytest.mark.slow
def test_population_can_be_sharded_over_a_mesh(fmnist_task):
  mesh = population_mesh()
  keys = shard_population(
      jax.random.split(jax.random.key(0), 2 * jax.device_count()), mesh)
  h = shard_population({"lr": jnp.full((keys.shape[0],), 0.05)}, mesh)
  mk = lambda h: _sgd(h["lr"])
  st = shard_population(init_population(fmnist_task, mk, h, keys), mesh)
  st, hist = train_population(fmnist_task, mk, h, keys, 2, eval_every=2,
                              progress=False, eval_examples=50, state=st)
  assert hist.steps["train_loss"].shape == (keys.shape[0], 2)
  assert np.isfinite(hist.steps["train_loss"]).all()


def test_bad_arguments_are_errors(fmnist_task):
  with pytest.raises(ValueError, match="num_steps"):
    train(fmnist_task, _sgd(), jax.random.key(0), 0, progress=False)
  with pytest.raises(ValueError, match="eval_every"):
    train(fmnist_task, _sgd(), jax.random.key(0), 5, eval_every=0,
          progress=False)


@pytest.mark.slow
def test_population_sharded_over_two_host_devices():
  """Same run on a 2-device mesh (forced host devices) as on one device."""
  import os
  import subprocess
  import sys
  code = r"""
import jax, jax.numpy as jnp, numpy as np, optax
from lrmeta.data import load_dataset
from lrmeta.tasks import make_task
from lrmeta.train import (population_mesh, shard_population, init_population,
                          train_population)
assert jax.device_count() == 2
ds = load_dataset("fashion_mnist", num_val=200, max_train=500)
task = make_task("fashion_mnist", "small_cnn", batch_size=16, data=ds,
                 model_kwargs={"features": (4, 8), "hidden": 16})
mk = lambda h: optax.sgd(h["lr"], momentum=0.9)
h = {"lr": jnp.array([0.01, 0.02, 0.05, 0.1])}
keys = jax.random.split(jax.random.key(0), 4)
_, ref = train_population(task, mk, h, keys, 4, eval_every=4,
                          eval_examples=100, progress=False)
mesh = population_mesh()
hs, ks = shard_population((h, keys), mesh)
st = init_population(task, mk, hs, ks)
assert len(st.params["Dense_0"]["kernel"].sharding.device_set) == 2
st, hist = train_population(task, mk, hs, ks, 4, eval_every=4,
                            eval_examples=100, progress=False, state=st)
np.testing.assert_allclose(hist.steps["train_loss"], ref.steps["train_loss"],
                           rtol=1e-5)
print("OK")
"""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", code], env=env,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stderr[-3000:]
