"""The protocol's rules: a diverged run scores 0 in tuning and in test, on a
single task and on a family (its accuracy reads chance level, not NaN); tune
seeds never equal test seeds; a single-task meta-train config is rejected
when its `controller.name` is one that path cannot train."""

import types

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta import protocol as P
from lrmeta.experiments.jobs import meta_train
from lrmeta.experiments.transfer import section_protocol
from lrmeta.experiments.config import apply_overrides, load_config
from lrmeta.experiments.validate import ConfigError, validate
from lrmeta.tasks import make_task
from lrmeta.tasks.family import Instance
from lrmeta.train import History

BLOW_UP = 0.5  # rates above this turn the parameters NaN on the first step


def _sgd_blowing_up(lr):
  """SGD whose update is NaN when the rate exceeds BLOW_UP (traced)."""
  nan = jnp.where(lr > BLOW_UP, jnp.nan, 1.0)
  return optax.chain(optax.inject_hyperparams(optax.sgd)(learning_rate=lr),
                     optax.scale_by_schedule(lambda _: nan))


@pytest.fixture(scope="module")
def mlp_task(fmnist_small):
  return make_task("fashion_mnist", "mlp", batch_size=32, data=fmnist_small,
                   model_kwargs={"hidden": (16,)})


def test_a_diverged_run_scores_zero_on_a_single_task(mlp_task):
  grid = (0.05, 0.1, 1.0)
  p = P.Protocol(20, grid, (0,), (1, 2), eval_every=20, eval_examples=500,
                 max_widen=0)
  res = P.compare(mlp_task, {
      "tuned": P.Method(_sgd_blowing_up),
      "diverged": P.Method(_sgd_blowing_up, lr=1.0, tune=False)}, p,
                  quiet=True)
  tuned, bad = res["tuned"], res["diverged"]
  # Tuning: the diverging rate scores exactly 0, so it is never chosen.
  assert tuned.grid_val_acc[2] == 0.0 and tuned.lr in grid[:2]
  assert min(tuned.grid_val_acc[:2]) > 0.2
  # Test: the diverged runs read chance accuracy, yet score 0.
  assert not bad.hist.finite().any()
  assert (bad.hist.final("test_acc") > 0).all()
  np.testing.assert_array_equal(bad.scores(), [0.0, 0.0])
  d = P.differences(res, "tuned", "diverged")["pooled"]["acc"]
  assert d["mean"] == pytest.approx(100 * tuned.scores().mean())
  v = P.versus_best(res, "tuned", ["diverged"])
  assert v["baseline"] == "diverged" and v["verdict"] == "better"


def test_a_diverged_run_scores_zero_on_a_family():
  shape = Instance(pool=7, hidden=(16,), batch_size=32, num_steps=30, seed=3)
  grid = P.sqrt2_grid(0.1)  # 0.1 .. 1.13: the top three rates diverge
  p = P.FamilyProtocol(grid, (0,), (5, 6), max_widen=0)
  res = P.compare_family([shape], {
      "tuned": lambda s: P.Method(_sgd_blowing_up),
      "diverged": lambda s: P.Method(_sgd_blowing_up, lr=1.0, tune=False)},
                         p, quiet=True)
  val = res["tuned"].grid_val_acc[shape.shape]
  assert [v for r, v in val.items() if r > BLOW_UP] == [0.0] * 3
  assert all(v > 0 for r, v in val.items() if r <= BLOW_UP)
  assert res["tuned"].family_lr <= BLOW_UP
  bad = res["diverged"].per_instance[shape.shape]
  assert (bad.hist.final("test_acc") > 0).all()  # chance level, not NaN
  np.testing.assert_array_equal(bad.scores(), [0.0, 0.0])
  d = P.family_differences(res, ("tuned", "family"), ("diverged", "family"))
  good = res["tuned"].per_family[shape.shape].scores()
  assert d["pooled"]["acc"]["mean"] == pytest.approx(100 * good.mean())


def test_the_score_a_task_declares_and_its_worst_value():
  hist = History({"train_loss": np.ones((3, 2)),
                  "finite": np.array([[1, 1], [1, 0], [1, 1]], bool)},
                 np.array([2]), {"val_acc": np.array([[0.8], [0.1], [np.nan]]),
                                 "val_mse": np.array([[0.3], [0.2], [0.5]])},
                 0.0)
  assert P.score_key(object(), "val") == "val_acc"
  np.testing.assert_array_equal(P.final_scores(hist, "val"), [0.8, 0.0, 0.0])
  mse = types.SimpleNamespace(metric="mse", maximize=False)
  assert P.score_key(mse, "test") == "test_mse"
  np.testing.assert_array_equal(
      P.final_scores(hist, "val", "mse", maximize=False), [0.3, np.inf, 0.5])


def test_tune_seeds_never_equal_test_seeds():
  with pytest.raises(ValueError, match=r"share \[1\]"):
    P.Protocol(20, (0.1, 0.2), (0, 1), (1, 2))
  with pytest.raises(ValueError, match=r"share \[5\]"):
    P.FamilyProtocol(P.sqrt2_grid(0.01), (5,), (5, 6))
  with pytest.raises(ValueError, match="tune_seeds is empty"):
    P.Protocol(20, (0.1, 0.2), (), (1, 2))
  P.Protocol(20, (), (), (1, 2))  # nothing tuned: no tune seeds needed
  tune = P.disjoint_tune_seeds((1000, 1001, 1002))
  assert len(tune) == 3 and not set(tune) & {1000, 1001, 1002}


def test_meta_test_and_transfer_tune_on_seeds_disjoint_from_test_seeds():
  cfg = load_config("configs/mlrsnet_fmnist.py:small")
  p = meta_train.meta_test_protocol(cfg.test)
  assert p.test_seeds == tuple(cfg.test.seeds)
  assert not set(p.tune_seeds) & set(p.test_seeds)
  # Every transfer section of every shipped config: its protocol is built
  # (Protocol refuses shared seeds) and its seeds are disjoint.
  for path in ("mlrsnet_fmnist.py:small", "family_es.py:small",
               "learned_lr.py:debug", "evaluate_transfer.py:small",
               "evaluate_transfer.py:published_fmnist",
               "evaluate_transfer.py:published_cifar"):
    c = load_config(f"configs/{path}")
    for name in c.transfer.tasks:
      q = section_protocol(c.transfer[name])
      assert not set(q.tune_seeds) & set(q.test_seeds), (path, name)


def test_single_task_meta_train_rejects_a_controller_it_cannot_train():
  # Without the CIFAR-10 transfer, so that the check runs on a clone
  # with Fashion-MNIST only.
  fmnist_only = ["--config.transfer.enabled=False"]
  cfg = apply_overrides(load_config("configs/mlrsnet_fmnist.py:small"),
                        fmnist_only)
  validate(cfg, "meta-train")  # mlr_snet: trained
  for name in ("learned_schedule", "hypergradient"):
    bad = apply_overrides(load_config("configs/mlrsnet_fmnist.py:small"),
                          [f"--config.controller.name={name}"])
    with pytest.raises(ConfigError, match="controller.name"):
      validate(bad, "meta-train")
  # On the family the same name is what the job trains.
  fam = apply_overrides(load_config("configs/family_es.py:small_fmnist"),
                        ["--config.controller.name=learned_schedule"])
  validate(fam, "meta-train")
