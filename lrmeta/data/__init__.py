"""Real datasets, loaded offline first, batched on device."""

from __future__ import annotations

from lrmeta.data import cifar10, fashion_mnist
from lrmeta.data.base import (Batch, DataNotFoundError, Dataset,
                              carve_validation, make_dataset,
                              random_crop_flip, symmetric_label_noise)

DATASETS = ("fashion_mnist", "cifar10")
SOURCES = ("local", "tfds")


def locate(name: str, data_dir: str | None = None) -> str:
  """Where a dataset's local files are, without reading them (a quick check
  before a run loads them).

  Raises:
    ValueError: for an unknown dataset.
    DataNotFoundError: when the files are not where the settings say.
  """
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
  if name == "fashion_mnist":
    return str(fashion_mnist.resolve_dir(data_dir))
  return str(cifar10.resolve_archive(data_dir))


def load_dataset(name: str, *, source: str = "local",
                 data_dir: str | None = None, num_val: int = 5000,
                 seed: int = 0, label_noise: float = 0.0,
                 augment: str | None = None,
                 max_train: int | None = None) -> Dataset:
  """Loads a dataset with a held-out validation split carved from train.

  Args:
    name: ``"fashion_mnist"`` or ``"cifar10"``.
    source: ``"local"`` (offline files: Debian's Fashion-MNIST package, the
      CIFAR-10 JPEG copy) or ``"tfds"`` (``tfds.load``, needs internet and the
      ``[tfds]`` extra).
    data_dir: where the local files are (config key ``task.data_dir``;
      default: ``$LRMETA_DATA_DIR`` for Fashion-MNIST,
      ``$LRMETA_CIFAR10_JPEG`` for CIFAR-10, else the standard locations).
      A place set but unusable raises :class:`DataNotFoundError`.
    num_val: number of training examples held out as the validation split.
    seed: seed of the validation split and of the label noise.
    label_noise: fraction of training labels replaced uniformly at random.
    augment: ``"none"`` or ``"crop_flip"``; default ``crop_flip`` for CIFAR-10.
    max_train: keep only this many training examples (for small runs/tests).

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
  else:
    loader = (cifar10.load_arrays if source == "local"
              else cifar10.load_arrays_tfds)
    display = cifar10.JPEG_NAME if source == "local" else "CIFAR-10"
    default_aug = "crop_flip"
  train, test = loader(data_dir)
  return make_dataset(display, train, test, 10, num_val=num_val, seed=seed,
                      label_noise=label_noise,
                      augment=augment if augment is not None else default_aug,
                      max_train=max_train)


__all__ = ["Batch", "DataNotFoundError", "Dataset", "DATASETS", "locate",
           "load_dataset", "make_dataset",
           "carve_validation", "symmetric_label_noise", "random_crop_flip",
           "fashion_mnist", "cifar10"]
