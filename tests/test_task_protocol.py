"""The task and task-family interface: any loss trains through the loops, a
single task is a family of one, the one shape sampler, and the pooled family
as one implementation."""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.meta import family as runs
from lrmeta.models import make_model
from lrmeta.tasks import (Shape, ShapeFamily, Task, TaskFamily, TaskProtocol,
                         maximizes, metric_of, sample_shapes,
                         single, judged_shapes)
from lrmeta.tasks import family as fam
from lrmeta.train import history_key, train, train_population

# -- a regression task: squared error, judged by "mse" (lower is better) -------


@functools.lru_cache(maxsize=None)
def _waves(seed: int, n: int = 512):
  """``y = sin(3 x1) + 0.5 x2`` on ``x ~ U[-1, 1]^2``: train, val, test."""
  x = np.random.default_rng(seed).uniform(-1, 1, (3 * n, 2)).astype("float32")
  y = np.sin(3 * x[:, 0]) + 0.5 * x[:, 1]
  return tuple((x[i * n:(i + 1) * n], y[i * n:(i + 1) * n])
               for i in range(3))


@dataclasses.dataclass(frozen=True, eq=False)
class Regression:
  """An MLP fitting a smooth function of two inputs by squared error."""

  width: int = 16
  batch_size: int = 32
  data_seed: int = 0
  metric = "mse"
  maximize = False

  @property
  def name(self):
    return f"waves/mlp{self.width}"

  def _net(self):
    return nn.Sequential([nn.Dense(self.width), nn.tanh, nn.Dense(1)])

  def init(self, key):
    return self._net().init(key, jnp.zeros((1, 2)))["params"], {}

  def loss(self, params, model_state, batch, train=True):
    del train
    x, y = batch
    err = self._net().apply({"params": params}, x)[:, 0] - y
    return jnp.mean(err**2), (model_state, err)

  def batch_metrics(self, batch, err):
    return {"mse": jnp.mean(err**2)}

  def _batch(self, split, key, size):
    x, y = _waves(self.data_seed)[split]
    i = jax.random.randint(key, (size,), 0, x.shape[0])
    return jnp.asarray(x)[i], jnp.asarray(y)[i]

  def train_batch(self, key):
    return self._batch(0, key, self.batch_size)

  def val_batch(self, key, batch_size=None):
    return self._batch(1, key, batch_size or self.batch_size)

  def evaluate(self, params, model_state, split="test", max_examples=None):
    x, y = _waves(self.data_seed)[{"train": 0, "val": 1, "test": 2}[split]]
    batch = (jnp.asarray(x[:max_examples]), jnp.asarray(y[:max_examples]))
    mse = self.loss(params, model_state, batch)[0]
    return {"loss": mse, "mse": mse}


@dataclasses.dataclass(frozen=True)
class WaveShape(Shape):
  width: int = 16

  def task(self):
    return Regression(width=self.width)


def test_a_regression_task_trains_and_records_its_metric():
  task = Regression()
  assert isinstance(task, TaskProtocol)
  assert (metric_of(task), maximizes(task)) == ("mse", False)
  _, hist = train(task, optax.sgd(0.1, momentum=0.9), jax.random.key(0), 300,
                  eval_every=100, progress=False)
  assert set(hist.evals) == {"val_loss", "val_mse", "test_loss", "test_mse"}
  assert "train_mse" in hist.steps and "train_acc" not in hist.steps
  mse = hist.evals["val_mse"]
  assert mse.shape == (3,) and mse[-1] < 0.5 * mse[0], mse
  # The variance of y is about 0.58: the fit explains most of it.
  assert hist.final("test_mse") < 0.1
  # A population of two rates records the same names, per member.
  _, pop = train_population(task, lambda h: optax.sgd(h, momentum=0.9),
                            jnp.asarray([0.1, 1e-4]),
                            jax.random.split(jax.random.key(1), 2), 300,
                            eval_every=300, eval_splits=("val",),
                            progress=False)
  final = pop.final("val_mse")
  assert final.shape == (2,) and final[0] < final[1]


def test_history_keys_keep_the_accuracy_name():
  assert history_key("val", "accuracy") == "val_acc"
  assert history_key("test", "loss") == "test_loss"
  assert history_key("train", "mse") == "train_mse"


def test_the_meta_layer_scores_a_user_family():
  shapes = [WaveShape(width=w, num_steps=100, seed=s)
            for w in (8, 16) for s in (0, 1)]
  losses = runs.final_val_losses(shapes, lambda _: optax.sgd(0.1,
                                                            momentum=0.9))
  for inst, loss in list(zip(shapes, losses))[1:3]:
    _, hist = train(inst.task(), optax.sgd(0.1, momentum=0.9), inst.key(),
                    100, eval_every=100, eval_splits=("val",),
                    progress=False)
    np.testing.assert_allclose(loss, hist.final("val_loss"), rtol=1e-4)
  assert len(set(losses.tolist())) == 4


# -- families ------------------------------------------------------------------


def test_single_task_is_a_family_of_one():
  task = Regression()
  one = single(task, 50)
  assert isinstance(one, TaskFamily)
  (shape,) = one.train_shapes
  assert one.held_out_shapes == () and judged_shapes(one) == (shape,)
  assert one.task(shape) is task and shape.num_steps == 50
  assert sample_shapes(one, jax.random.key(0), 1) == (shape,)
  with pytest.raises(ValueError, match=r"\[1, 1\]"):
    sample_shapes(one, jax.random.key(0), 2)
  run = dataclasses.replace(shape, seed=7)
  assert run.shape == shape and run != shape and run.task() is task
  assert run.name == "waves/mlp16/T50/s7"
  # Shapes of two tasks differ even when the tasks are alike.
  other = single(Regression(), 50).train_shapes[0]
  assert other != shape and len({other, shape}) == 2
  # The meta layer trains it like any family instance.
  loss = runs.final_val_losses([run], lambda _: optax.sgd(0.1))[0]
  _, hist = train(task, optax.sgd(0.1), run.key(), 50, eval_every=50,
                  eval_splits=("val",), progress=False)
  np.testing.assert_allclose(loss, hist.final("val_loss"), rtol=1e-4)


@dataclasses.dataclass(frozen=True)
class Skewed:
  """A family whose sampler mostly returns its held-out shape."""

  train_shapes: tuple = tuple(WaveShape(width=w, num_steps=10)
                              for w in (4, 8, 16))
  held_out_shapes: tuple = (WaveShape(width=32, num_steps=10),)

  def sample(self, key, n):
    picks = jax.random.randint(key, (n,), 0, 10)
    shapes = self.train_shapes + self.held_out_shapes * 7
    return tuple(dataclasses.replace(shapes[int(i)], seed=int(i))
                 for i in picks)

  def task(self, shape):
    return shape.task()


@pytest.mark.parametrize("family", [Skewed(), fam.Family()],
                         ids=["skewed", "pooled"])
def test_the_sampler_never_draws_held_out_shapes(family):
  held = set(family.held_out_shapes)
  n = len(family.train_shapes)
  n = n if n < 10 else 20
  seen = set()
  for k in range(8):
    shapes = sample_shapes(family, jax.random.key(k), n)
    assert shapes == sample_shapes(family, jax.random.key(k), n)
    assert len(set(shapes)) == n and not set(shapes) & held
    assert all(s.seed == 0 for s in shapes)
    assert set(shapes) <= set(family.train_shapes)
    seen.add(shapes)
  # Different keys give different draws (or orders).
  assert len(seen) > 1


def test_shape_family_checks_its_shapes():
  a, b = WaveShape(width=4, num_steps=10), WaveShape(width=8, num_steps=10)
  f = ShapeFamily((a, dataclasses.replace(a, seed=3), b), (WaveShape(
      width=32, num_steps=10),))
  assert f.train_shapes == (a, b) and f.task(a).width == 4
  assert set(f.sample(jax.random.key(0), 50)) == {a, b}
  with pytest.raises(ValueError, match="both trained on and held out"):
    ShapeFamily((a, b), (b,))
  with pytest.raises(ValueError, match="at least one"):
    ShapeFamily(())
  assert a.name == "num_steps=10/width=4/s0"


# -- the pooled family ---------------------------------------------------------

TINY = fam.Instance("fashion_mnist", 7, (16,), batch_size=32, num_steps=20,
                    seed=5)


def test_the_pooled_family_builds_the_same_tasks_as_before():
  family = fam.Family()
  assert isinstance(family, TaskFamily)
  task = family.task(TINY)
  assert fam.instance_task(TINY).name == task.name == TINY.task().name
  # The task as the pooled family has always built it.
  data = fam.pooled_dataset(*TINY.data_spec)
  before = Task("fashion_mnist7/mlp16/b32/T20/noise0/nall/d0", data,
                make_model("mlp", 10, hidden=(16,)), batch_size=32,
                eval_batch_size=data.val_x.shape[0])
  assert task.name == before.name and task.dataset is before.dataset
  assert (task.batch_size, task.eval_batch_size) == (32, 2_000)
  assert (metric_of(task), maximizes(task)) == ("accuracy", True)
  key = jax.random.key(0)
  p, s = task.init(key)
  q, _ = before.init(key)
  assert jax.tree.all(jax.tree.map(lambda x, y: bool((x == y).all()), p, q))
  got, want = task.evaluate(p, s, "val"), before.evaluate(q, s, "val")
  assert got.keys() == want.keys() == {"loss", "accuracy"}
  np.testing.assert_allclose(got["loss"], want["loss"])
  # Image classification still records train_acc and <split>_acc.
  _, hist = train(task, optax.sgd(0.05, momentum=0.9), TINY.key(), 20,
                  eval_every=20, progress=False)
  assert {"train_acc", "train_loss"} <= set(hist.steps)
  assert set(hist.evals) == {"val_loss", "val_acc", "test_loss", "test_acc"}


def test_pooled_training_and_held_out_shapes():
  tiny = fam.Family(sources=(("fashion_mnist", 7),), hidden=((16,), (32,)),
                    batch_sizes=(64,), num_steps=(100, 200),
                    label_noise=(0.0,), max_train=(None,),
                    held_out_combos=(((16,), 200),))
  reachable = {i.shape for i in tiny.sample(jax.random.key(0), 200)}
  held = set(tiny.held_out_shapes)
  assert held == {i.shape for i in tiny.held_out()} and len(held) == 2
  assert set(tiny.train_shapes) == reachable - held
  # 3 sources x 16 (width, budget) pairs x 3 batches x 3 noises x 2
  # subsets, less the three held-out shapes sampling can reach.
  assert len(fam.Family().train_shapes) == 3 * 16 * 3 * 3 * 2 - 3
