"""The task family: sampling, held-out instances, pooled data, vmapped groups
and the normalised fitness."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import optax
import pytest

from lrmeta.data import load_dataset
from lrmeta.meta import family as runs
from lrmeta.tasks import family as fam
from lrmeta.train import init_state, run_steps

# A cheap instance: 7x7 Fashion-MNIST, one hidden layer of 16, 20 steps.
TINY = fam.Instance("fashion_mnist", 7, (16,), batch_size=32, num_steps=20)


def _momentum_sgd(h):
  return optax.sgd(h["lr"], momentum=0.9)


# -- sampling ------------------------------------------------------------------


def test_sampling_is_deterministic_per_key():
  family = fam.Family()
  a = family.sample(jax.random.key(0), 16)
  assert a == family.sample(jax.random.key(0), 16)
  assert a != family.sample(jax.random.key(1), 16)
  assert len(set(a)) == 16
  g = family.sample_group(jax.random.key(3), 8)
  assert g == family.sample_group(jax.random.key(3), 8)
  assert g != family.sample_group(jax.random.key(4), 8)
  assert len({inst.shape for inst in g}) == 1
  assert len({inst.seed for inst in g}) == 8


def test_held_out_instances_are_never_sampled():
  family = fam.Family()
  held = family.held_out()
  assert held == family.held_out()
  # The named unseen combinations are held out, with unseen seeds.
  held_combos = {(i.hidden, i.num_steps) for i in held}
  assert set(family.held_out_combos) <= held_combos
  assert all(i.seed >= fam.HELD_OUT_SEED_BASE for i in held)
  assert not set(family.held_out_combos) & set(family.combos())

  sampled = list(family.sample(jax.random.key(0), 3000))
  for k in range(20):
    sampled += family.sample_group(jax.random.key(100 + k), 4)
  combos = {(i.hidden, i.num_steps) for i in sampled}
  assert not combos & set(family.held_out_combos)
  assert combos == set(family.combos())  # every allowed one is reachable
  assert {i.batch_size for i in sampled} == set(family.batch_sizes)
  assert {(i.dataset, i.pool) for i in sampled} == set(family.sources)
  assert {i.label_noise for i in sampled} == set(family.label_noise)
  assert all(0 <= i.seed < fam.HELD_OUT_SEED_BASE for i in sampled)
  assert not set(held) & set(sampled)


def test_family_rejects_holding_out_every_combination():
  with pytest.raises(ValueError, match="no .* combination"):
    fam.Family(hidden=((16,),), num_steps=(100,),
               held_out_combos=(((16,), 100),))


def test_instance_validates_and_groups_by_shape():
  with pytest.raises(ValueError, match="pool must divide"):
    fam.Instance("fashion_mnist", pool=8)
  a, b = TINY, fam.Instance("fashion_mnist", 7, [16], 32, 20, seed=5)
  assert a.shape == b.shape and hash(a.shape) == hash(b.shape) and a != b
  c = fam.Instance("fashion_mnist", 7, (16,), 32, 40)
  assert fam.group_by_shape([a, c, b]) == {a.shape: [0, 2], c.shape: [1]}


# -- pooled data ---------------------------------------------------------------


def test_pool_images_keeps_mean_intensity():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  gray = fam.pool_images(rgb, 8)
  assert gray.shape == (5, 8, 8, 1) and gray.dtype == np.uint8
  luma = rgb.astype(np.float64) @ np.asarray(fam.LUMA)
  np.testing.assert_allclose(gray.mean(axis=(1, 2, 3)), luma.mean(axis=(1, 2)),
                             atol=0.5)
  # Constant 4x4 blocks pool exactly to their value.
  blocks = rng.integers(0, 256, (2, 7, 7, 1), dtype=np.uint8)
  up = np.repeat(np.repeat(blocks, 4, axis=1), 4, axis=2)
  np.testing.assert_array_equal(fam.pool_images(up, 7), blocks)
  with pytest.raises(ValueError, match="must divide"):
    fam.pool_images(up, 5)


def test_pooled_fashion_mnist_shapes_and_statistics():
  raw = load_dataset("fashion_mnist", num_val=fam.VAL_SIZE, seed=0,
                     augment="none")
  raw_means = np.asarray(raw.val_x[:500], np.float64).mean(axis=(1, 2, 3))
  for size in (7, 14):
    ds = fam.pooled_dataset("fashion_mnist", size)
    assert ds is fam.pooled_dataset("fashion_mnist", size)  # cached
    assert ds.image_shape == (size, size, 1)
    assert ds.val_x.shape[0] >= 2000 and ds.num_train == raw.num_train
    np.testing.assert_array_equal(ds.val_y, raw.val_y)
    np.testing.assert_array_equal(ds.val_x,
                                  fam.pool_dataset(raw, size).val_x)
    means = np.asarray(ds.val_x[:500], np.float64).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(means, raw_means, atol=0.5)
    train = np.asarray(ds.train_x, np.float64) / 255
    np.testing.assert_allclose(ds.mean, [train.mean()], rtol=1e-6)
    np.testing.assert_allclose(ds.std, [train.std()], rtol=1e-6)
    assert ds.std[0] < raw.std[0]  # pooling smooths the images


@pytest.mark.cifar10
def test_pooled_cifar10_is_grayscale_8x8():
  raw = load_dataset("cifar10", num_val=fam.VAL_SIZE, seed=0, augment="none",
                     max_train=1000)
  ds = fam.pool_dataset(raw, 8)
  assert ds.image_shape == (8, 8, 1) and ds.val_x.shape[0] >= 2000
  assert ds.name == f"{raw.name}, grayscale 8x8"
  assert raw.name in ("CIFAR-10 (JPEG copy)", "CIFAR-10")
  luma = np.asarray(raw.val_x[:500], np.float64) @ np.asarray(fam.LUMA)
  means = np.asarray(ds.val_x[:500], np.float64).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(means, luma.mean(axis=(1, 2)), atol=0.5)


# -- training ------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _alone(shape):
  """One run of ``shape``, not vmapped: ``(lr, key) -> (params, val loss)``."""
  task = fam.instance_task(shape)

  @jax.jit
  def run(lr, key):
    opt = optax.sgd(lr, momentum=0.9)
    state = init_state(task, opt, key)
    state, _ = run_steps(task, opt, state, shape.num_steps)
    return state.params, task.evaluate(state.params, state.model_state,
                                       "val")["loss"]
  return run


@pytest.mark.slow
def test_group_trains_as_one_population_equal_to_each_alone():
  group = [dataclasses.replace(TINY, seed=s) for s in (0, 1, 2)]
  lrs = np.asarray([0.05, 0.1, 0.02], np.float32)
  states, hist = runs.train_group(group, _momentum_sgd, {"lr": lrs})
  losses = hist.final("val_loss")
  assert losses.shape == (3,) and len(set(losses.tolist())) == 3
  for i, inst in enumerate(group):
    params, loss = _alone(TINY.shape)(lrs[i], inst.key())
    member = jax.tree.map(lambda x, i=i: x[i], states.params)
    for x, y in zip(jax.tree.leaves(member), jax.tree.leaves(params)):
      np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses[i], loss, rtol=1e-5)
  _, alone_hist = runs.train_instance(group[0],
                                     optax.sgd(lrs[0], momentum=0.9))
  np.testing.assert_allclose(alone_hist.final("val_loss"), losses[0],
                             rtol=1e-5)
  # The fused program of the outer loop computes the same losses.
  fused = runs.final_val_losses(group, _momentum_sgd,
                               [{"lr": lr} for lr in lrs])
  np.testing.assert_allclose(fused, losses, rtol=1e-5)


def test_final_val_losses_groups_mixed_shapes_in_order():
  other = fam.Instance("fashion_mnist", 7, (8,), batch_size=32, num_steps=10)
  mixed = [TINY, other] + [dataclasses.replace(TINY, seed=s) for s in (5, 6)]
  lrs = np.asarray([0.05, 0.05, 0.1, 0.02], np.float32)
  got = runs.final_val_losses(mixed, _momentum_sgd, [{"lr": lr} for lr in lrs])
  want = [_alone(i.shape)(lr, i.key())[1] for i, lr in zip(mixed, lrs)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert len(set(got.tolist())) == 4


def test_reference_rate_has_fitness_one(monkeypatch):
  group = [dataclasses.replace(TINY, seed=s) for s in (10, 11, 12)]
  ref = runs.reference_losses(group)
  assert np.all(ref < np.log(10))  # the reference run learns

  def no_training(*args):
    raise AssertionError("a cached reference loss was recomputed")
  with monkeypatch.context() as m:
    m.setattr(runs, "group_val_loss_fn", no_training)
    assert runs.reference_loss(group[1]) == ref[1]

  def fitness(lr):
    hparams = [{"lr": np.float32(lr)}] * len(group)
    return runs.normalized_fitness(
        group, runs.final_val_losses(group, _momentum_sgd, hparams))

  np.testing.assert_allclose(fitness(runs.REFERENCE_LR), 1.0, rtol=1e-5)
  assert np.all(fitness(1e-4) > 1.1)
