"""Real datasets, loaded offline first, batched on device."""

from __future__ import annotations

import os

from lrmeta.data import cifar10, fashion_mnist
from lrmeta.data.base import (Batch, DataNotFoundError, Dataset, Source,
                              carve_validation, make_dataset,
                              random_crop_flip, symmetric_label_noise)

DATASETS = ("fashion_mnist", "cifar10")
SOURCES = ("local", "tfds")


def data_source(name: str, data_dir: str | None = None) -> Source:
  """Where ``load_dataset(name, data_dir=data_dir)`` will read from, found
  without reading (a quick check before a run loads it).

  Fashion-MNIST: ``data_dir`` (config key ``task.data_dir``), else
  ``$LRMETA_DATA_DIR``, else the Debian package's folder. CIFAR-10: the
  source chain of :func:`lrmeta.data.cifar10.resolve_source` (the JPEG copy
  set by ``data_dir`` or ``$LRMETA_CIFAR10_JPEG``, the JPEG copy beside the
  project, TFDS ``cifar10``).

  Raises:
    ValueError: for an unknown dataset.
    DataNotFoundError: when no source is usable (one line naming the fix).
  """
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
  if name == "cifar10":
    return cifar10.resolve_source(data_dir)
  path = str(fashion_mnist.resolve_dir(data_dir))
  how = ("config key task.data_dir" if data_dir else fashion_mnist.ENV_VAR
         if os.environ.get(fashion_mnist.ENV_VAR) else
         "the Debian package dataset-fashion-mnist")
  return Source("Fashion-MNIST", "idx", path, how)


def locate(name: str, data_dir: str | None = None) -> str:
  """The folder, archive or TFDS data dir :func:`data_source` finds.

  Raises:
    ValueError: for an unknown dataset.
    DataNotFoundError: when no source is usable.
  """
  return data_source(name, data_dir).path


def load_dataset(name: str, *, source: str = "local",
                 data_dir: str | None = None, num_val: int = 5000,
                 seed: int = 0, label_noise: float = 0.0,
                 augment: str | None = None,
                 max_train: int | None = None,
                 balanced_val: bool = False) -> Dataset:
  """Loads a dataset with a held-out validation split carved from train.

  Args:
    name: ``"fashion_mnist"`` or ``"cifar10"``.
    source: ``"local"`` (the first source :func:`data_source` finds:
      Debian's Fashion-MNIST package; for CIFAR-10 the JPEG copy, else a
      prepared TFDS ``cifar10``, downloaded only when
      ``$LRMETA_TFDS_DOWNLOAD=1``) or ``"tfds"`` (TFDS only, downloading
      when not prepared: needs a network and the ``[tfds]`` extra).
    data_dir: where the local files are (config key ``task.data_dir``;
      default: ``$LRMETA_DATA_DIR`` for Fashion-MNIST,
      ``$LRMETA_CIFAR10_JPEG`` for CIFAR-10, else the standard locations).
      A place set but unusable raises :class:`DataNotFoundError`.
    num_val: number of training examples held out as the validation split.
    seed: seed of the validation split and of the label noise.
    label_noise: fraction of training labels replaced uniformly at random.
    augment: ``"none"`` or ``"crop_flip"``; default ``crop_flip`` for CIFAR-10.
    max_train: keep only this many training examples (for small runs/tests).
    balanced_val: carve the validation split with ``num_val / 10`` examples
      of every class (MLR-SNet's class-balanced meta set) instead of a
      uniformly random ``num_val``.

  Returns:
    A device-resident :class:`Dataset`.
  """
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
  if source not in SOURCES:
    raise ValueError(f"data source must be one of {SOURCES}, got {source!r}")
  if name == "fashion_mnist":
    loader = (fashion_mnist.load_arrays if source == "local"
              else fashion_mnist.load_arrays_tfds)
    display = "Fashion-MNIST"
    default_aug = "none"
    train, test = loader(data_dir)
  elif source == "local":
    src = cifar10.resolve_source(data_dir)
    train, test = cifar10.load_arrays(source=src)
    display = src.label
    default_aug = "crop_flip"
  else:
    train, test = cifar10.load_arrays_tfds(data_dir)
    display = cifar10.TFDS_NAME
    default_aug = "crop_flip"
  return make_dataset(display, train, test, 10, num_val=num_val, seed=seed,
                      label_noise=label_noise,
                      augment=augment if augment is not None else default_aug,
                      max_train=max_train, balanced_val=balanced_val)


__all__ = ["Batch", "DataNotFoundError", "Dataset", "DATASETS", "Source",
           "data_source", "locate",
           "load_dataset", "make_dataset",
           "carve_validation", "symmetric_label_noise", "random_crop_flip",
           "fashion_mnist", "cifar10"]
