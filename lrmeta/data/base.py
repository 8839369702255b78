"""Device-resident image-classification datasets and on-device batching.

A :class:`Dataset` holds every split as ``uint8`` images (NHWC) and ``int32``
labels on the default device(s). Batches are drawn inside ``jit``/``scan`` from
a PRNG key, so a whole inner training loop compiles into one program and a
population of runs can be ``vmap``-ed over keys while sharing the same arrays.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class DataNotFoundError(FileNotFoundError):
  """A dataset's files are not where the settings say (or anywhere).

  The message names the setting that chose the place (the ``data_dir``
  argument, i.e. config key ``task.data_dir``, or an environment variable)
  and how to fix it. A place that is set but unusable is an error, never a
  reason to fall back to another copy.
  """


class Source(NamedTuple):
  """Where a dataset is read from (named in a run's output and results).

  Attributes:
    label: the dataset's name in tables, e.g. ``"CIFAR-10 (JPEG copy)"``.
    kind: ``"idx"`` (Fashion-MNIST's IDX files), ``"jpeg"`` (the CIFAR-10
      JPEG copy) or ``"tfds"`` (a TFDS data dir).
    path: the folder, archive or TFDS data dir.
    how: the setting or search step that chose it, e.g. ``"LRMETA_DATA_DIR"``.
    file_format: ``tfds`` only: the prepared data's format
      (``"array_record"`` or ``"tfrecord"``); ``""`` when it is still to be
      downloaded.
  """

  label: str
  kind: str
  path: str
  how: str
  file_format: str = ""

  @property
  def download(self) -> bool:
    """Whether loading will download (TFDS data not prepared yet)."""
    return self.kind == "tfds" and not self.file_format

  def describe(self) -> str:
    """One line, e.g. ``CIFAR-10 (JPEG copy) from /x/cifar10-jpeg.tar.gz
    (LRMETA_CIFAR10_JPEG)``."""
    if self.kind != "tfds":
      where = self.path
    elif self.download:
      where = f"TFDS, to be downloaded into {self.path}"
    else:
      where = f"TFDS data dir {self.path} ({self.file_format})"
    return f"{self.label} from {where} ({self.how})"

  def as_dict(self) -> dict[str, str]:
    return {"label": self.label, "kind": self.kind, "path": self.path,
            "how": self.how, "file_format": self.file_format}


class Batch(NamedTuple):
  """One minibatch: normalised float32 images (NHWC) and int32 labels."""

  image: jax.Array
  label: jax.Array


@dataclasses.dataclass(frozen=True)
class Dataset:
  """An image-classification dataset with train / validation / test splits.

  Attributes:
    name: Human-readable name, used in tables (e.g. "CIFAR-10 (JPEG copy)").
    train_x, train_y: training images ``uint8[N, H, W, C]`` and labels.
    val_x, val_y: held-out validation split carved from the training set.
    test_x, test_y: the official test split.
    num_classes: number of classes.
    mean, std: per-channel statistics of the training images, in [0, 1] units.
    augment: ``"none"`` or ``"crop_flip"`` (random 4-pixel-pad crop and
      horizontal flip, the standard CIFAR augmentation).
    label_noise: fraction of training labels that were replaced at random.
  """

  name: str
  train_x: jax.Array
  train_y: jax.Array
  val_x: jax.Array
  val_y: jax.Array
  test_x: jax.Array
  test_y: jax.Array
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  augment: str = "none"
  label_noise: float = 0.0

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_x.shape[1:])

  @property
  def num_train(self) -> int:
    return int(self.train_x.shape[0])

  def normalize(self, images_u8: jax.Array) -> jax.Array:
    x = images_u8.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(
        self.std, jnp.float32)

  def sample_train_batch(self, key: jax.Array, batch_size: int) -> Batch:
    """Draws a training minibatch (uniform, with replacement) on device.

    Sampling with replacement keeps the batch a pure function of ``key``, so
    the loop needs no epoch state and vmapped members never synchronise.
    Augmentation (if configured) is applied on device.
    """
    k_idx, k_aug = jax.random.split(key)
    idx = jax.random.randint(k_idx, (batch_size,), 0, self.num_train)
    images = self.normalize(jnp.take(self.train_x, idx, axis=0))
    if self.augment == "crop_flip":
      images = random_crop_flip(k_aug, images, pad=4)
    return Batch(images, jnp.take(self.train_y, idx, axis=0))

  def sample_val_batch(self, key: jax.Array, batch_size: int) -> Batch:
    """Draws a minibatch from the held-out validation split."""
    idx = jax.random.randint(key, (batch_size,), 0, self.val_x.shape[0])
    return Batch(
        self.normalize(jnp.take(self.val_x, idx, axis=0)),
        jnp.take(self.val_y, idx, axis=0))

  def split_arrays(self, split: str) -> tuple[jax.Array, jax.Array]:
    if split not in ("train", "val", "test"):
      raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    return getattr(self, f"{split}_x"), getattr(self, f"{split}_y")


def random_crop_flip(key: jax.Array, images: jax.Array, pad: int = 4
                     ) -> jax.Array:
  """Random ``pad``-pixel shifted crop plus horizontal flip, per image."""
  n, h, w, _ = images.shape
  k_off, k_flip = jax.random.split(key)
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)),
                   mode="reflect")
  offsets = jax.random.randint(k_off, (n, 2), 0, 2 * pad + 1)

  def crop(img, off):
    return jax.lax.dynamic_slice(img, (off[0], off[1], 0),
                                 (h, w, img.shape[-1]))

  cropped = jax.vmap(crop)(padded, offsets)
  flip = jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1))
  return jnp.where(flip, cropped[:, :, ::-1, :], cropped)


def check_images(x: np.ndarray, y: np.ndarray, *, what: str,
                 channels: int | None = None) -> None:
  """Validates raw arrays with an error that names what was expected."""
  if x.dtype != np.uint8:
    raise TypeError(f"{what}: expected uint8 images, got dtype {x.dtype}")
  if x.ndim != 4 or (channels is not None and x.shape[-1] != channels):
    want = f"[N, H, W, {channels if channels is not None else 'C'}]"
    raise ValueError(f"{what}: expected images of shape {want}, got {x.shape}")
  if y.ndim != 1 or y.shape[0] != x.shape[0]:
    raise ValueError(
        f"{what}: expected labels of shape [{x.shape[0]}], got {y.shape}")
  if not np.issubdtype(y.dtype, np.integer):
    raise TypeError(f"{what}: expected integer labels, got dtype {y.dtype}")


def carve_validation(x: np.ndarray, y: np.ndarray, num_val: int, seed: int,
                     *, balanced: bool = False, num_classes: int = 10
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Splits ``num_val`` examples off the training set, deterministic per seed.

  ``balanced=False`` takes a uniformly random ``num_val``. ``balanced=True``
  takes ``num_val // num_classes`` of every class, as MLR-SNet's authors
  build their 1,000-image meta set (``meta-train/image-classification/
  data_loader.py`` 153-165: per class, shuffle its indices and take the
  first ``num_meta / 10``); ``num_val`` must then be a multiple of
  ``num_classes`` and every class must have more examples than its share.
  The remaining training examples are returned in a random order.
  """
  if not 0 <= num_val < x.shape[0]:
    raise ValueError(
        f"num_val must be in [0, {x.shape[0]}), got {num_val}")
  rng = np.random.default_rng(seed)
  if not balanced:
    perm = rng.permutation(x.shape[0])
    val, train = perm[:num_val], perm[num_val:]
    return x[train], y[train], x[val], y[val]
  if num_val % num_classes:
    raise ValueError(f"a class-balanced split needs num_val divisible by "
                     f"{num_classes} classes, got {num_val}")
  share = num_val // num_classes
  val_parts, train_parts = [], []
  for c in range(num_classes):
    idx = rng.permutation(np.flatnonzero(y == c))
    if idx.shape[0] <= share:
      raise ValueError(f"class {c} has {idx.shape[0]} training examples, "
                       f"too few for {share} in a balanced split")
    val_parts.append(idx[:share])
    train_parts.append(idx[share:])
  val = rng.permutation(np.concatenate(val_parts))
  train = rng.permutation(np.concatenate(train_parts))
  return x[train], y[train], x[val], y[val]


def symmetric_label_noise(y: np.ndarray, rate: float, num_classes: int,
                          seed: int) -> np.ndarray:
  """Replaces a fraction ``rate`` of labels by a uniformly random class.

  This is the "uniform noise" protocol of MLR-SNet's robustness experiment:
  each selected label is redrawn uniformly over all classes (it may keep its
  value), so the expected fraction of wrong labels is ``rate * (C-1)/C``.
  """
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"label_noise must be in [0, 1], got {rate}")
  rng = np.random.default_rng(seed + 1)
  flip = rng.random(y.shape[0]) < rate
  noisy = y.copy()
  noisy[flip] = rng.integers(0, num_classes, int(flip.sum()))
  return noisy.astype(np.int32)


def make_dataset(name: str, train: tuple[np.ndarray, np.ndarray],
                 test: tuple[np.ndarray, np.ndarray], num_classes: int, *,
                 num_val: int, seed: int, label_noise: float = 0.0,
                 augment: str = "none", max_train: int | None = None,
                 balanced_val: bool = False) -> Dataset:
  """Builds a device-resident :class:`Dataset` from numpy splits.

  ``balanced_val``: carve a class-balanced validation split
  (:func:`carve_validation`).
  """
  if augment not in ("none", "crop_flip"):
    raise ValueError(f"augment must be 'none' or 'crop_flip', got {augment!r}")
  x, y = train
  tx, ty = test
  check_images(x, y, what=f"{name} train")
  check_images(tx, ty, what=f"{name} test", channels=x.shape[-1])
  x, y, vx, vy = carve_validation(x, y, num_val, seed, balanced=balanced_val,
                                  num_classes=num_classes)
  if max_train is not None:
    x, y = x[:max_train], y[:max_train]
  if label_noise > 0:
    y = symmetric_label_noise(y, label_noise, num_classes, seed)
  # float64 accumulation: numpy's float32 multi-axis mean is visibly wrong
  # on 45k CIFAR images (0.364 for every channel instead of 0.49/0.48/0.44).
  flat = x.reshape(-1, x.shape[-1]).astype(np.float64) / 255.0
  mean = tuple(float(m) for m in flat.mean(axis=0))
  std = tuple(float(s) for s in flat.std(axis=0))
  put = jnp.asarray
  return Dataset(
      name=name, train_x=put(x), train_y=put(y.astype(np.int32)),
      val_x=put(vx), val_y=put(vy.astype(np.int32)), test_x=put(tx),
      test_y=put(ty.astype(np.int32)), num_classes=num_classes, mean=mean,
      std=std, augment=augment, label_noise=label_noise)
