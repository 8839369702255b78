"""Data loading: real files, deterministic splits, label noise, clear errors."""

import gzip
import hashlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrmeta.data import (carve_validation, fashion_mnist, load_dataset,
                         make_dataset, random_crop_flip,
                         symmetric_label_noise)


def test_fashion_mnist_full_shapes_and_labels():
  (tx, ty), (ex, ey) = fashion_mnist.load_arrays()
  assert tx.shape == (60000, 28, 28, 1) and tx.dtype == np.uint8
  assert ex.shape == (10000, 28, 28, 1)
  # Official Fashion-MNIST: 6,000 training and 1,000 test images per class.
  np.testing.assert_array_equal(np.bincount(ty), np.full(10, 6000))
  np.testing.assert_array_equal(np.bincount(ey), np.full(10, 1000))


def test_validation_split_is_deterministic_and_disjoint():
  x = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
  y = np.arange(100, dtype=np.int32)
  a = carve_validation(x, y, 10, seed=3)
  b = carve_validation(x, y, 10, seed=3)
  c = carve_validation(x, y, 10, seed=4)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  assert not np.array_equal(a[3], c[3])
  assert set(a[1].tolist()).isdisjoint(a[3].tolist())
  assert len(a[1]) + len(a[3]) == 100


def test_balanced_validation_split_takes_an_equal_share_of_each_class():
  rng = np.random.default_rng(0)
  # Unequal classes, as a real training set may have: 40 to 130 per class.
  y = np.concatenate([np.full(40 + 10 * c, c) for c in range(10)]).astype(
      np.int32)
  x = np.arange(y.shape[0], dtype=np.int64).reshape(-1, 1, 1, 1)
  rng.shuffle(y)
  tx, ty, vx, vy = carve_validation(x, y, 100, seed=1, balanced=True)
  np.testing.assert_array_equal(np.bincount(vy, minlength=10), np.full(10, 10))
  assert set(tx.ravel().tolist()).isdisjoint(vx.ravel().tolist())
  assert tx.shape[0] + vx.shape[0] == x.shape[0]
  np.testing.assert_array_equal(y[vx.ravel()], vy)   # labels travel with x
  # The random split of the same size is generally not balanced.
  _, _, _, ry = carve_validation(x, y, 100, seed=1)
  assert np.bincount(ry, minlength=10).std() > 0
  with pytest.raises(ValueError, match="divisible"):
    carve_validation(x, y, 95, seed=1, balanced=True)
  with pytest.raises(ValueError, match="too few"):
    carve_validation(x, y, 400, seed=1, balanced=True)


def test_symmetric_label_noise_rate():
  y = np.zeros(20000, np.int32)
  noisy = symmetric_label_noise(y, 0.4, 10, seed=0)
  # A redrawn label keeps its class with probability 1/10.
  assert abs((noisy != y).mean() - 0.4 * 0.9) < 0.015
  np.testing.assert_array_equal(noisy, symmetric_label_noise(y, 0.4, 10, 0))


def test_dataset_normalisation_and_batches(fmnist_small):
  ds = fmnist_small
  assert ds.train_x.shape[0] == 4000 and ds.val_x.shape[0] == 1000
  b = jax.jit(lambda k: ds.sample_train_batch(k, 256))(jax.random.key(0))
  assert b.image.shape == (256, 28, 28, 1) and b.image.dtype == jnp.float32
  assert abs(float(b.image.mean())) < 0.2 and 0.8 < float(b.image.std()) < 1.2
  b2 = ds.sample_train_batch(jax.random.key(0), 256)
  np.testing.assert_array_equal(b.label, b2.label)


def test_missing_data_dir_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="apt-get install -y "
                     "dataset-fashion-mnist"):
    fashion_mnist.load_arrays(str(tmp_path))


def test_bad_dtype_and_shape_are_named():
  x = np.zeros((10, 28, 28, 1), np.float32)
  y = np.zeros(10, np.int32)
  with pytest.raises(TypeError, match="expected uint8"):
    make_dataset("x", (x, y), (x, y), 10, num_val=2, seed=0)
  with pytest.raises(ValueError, match=r"expected labels of shape \[10\]"):
    make_dataset("x", (x.astype(np.uint8), y[:5]), (x.astype(np.uint8), y),
                 10, num_val=2, seed=0)


def test_unknown_dataset_and_source():
  with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
    load_dataset("mnist")
  with pytest.raises(ValueError, match="data source"):
    load_dataset("fashion_mnist", source="web")


def test_crop_flip_preserves_content():
  img = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
  out = random_crop_flip(jax.random.key(1), img, pad=2)
  assert out.shape == img.shape
  # Each output row segment is a (possibly flipped, shifted) window of the
  # reflect-padded input, so the centre pixel values come from the input.
  assert set(np.unique(out[:, 3:5, 3:5])).issubset(set(np.unique(img)))


def test_tfds_manual_dir_restores_official_bytes(tmp_path):
  """Debian's gzip headers rewritten -> the official md5s TFDS checks."""
  out = pathlib.Path(fashion_mnist.prepare_tfds_manual_dir(str(tmp_path)))
  official = {
      "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
      "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
      "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
      "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
  }
  for name, md5 in official.items():
    data = (out / name).read_bytes()
    assert hashlib.md5(data).hexdigest() == md5, name
    assert gzip.decompress(data)[:3] == b"\x00\x00\x08"


@pytest.mark.cifar10
def test_cifar10_loads_whole_and_is_labelled_by_its_source():
  """CIFAR-10 from the first source found (on this project's machines the
  JPEG copy in ../shared/data/cifar10-jpeg) loads whole, labelled as such."""
  from lrmeta.data import cifar10
  src = cifar10.resolve_source()
  (tx, ty), (ex, ey) = cifar10.load_arrays()
  assert tx.shape == (50000, 32, 32, 3) and tx.dtype == np.uint8
  assert ex.shape == (10000, 32, 32, 3)
  np.testing.assert_array_equal(np.bincount(ty), np.full(10, 5000))
  np.testing.assert_array_equal(np.bincount(ey), np.full(10, 1000))
  # The archive is stored by class; the test split must come mixed so that
  # an evaluation on its first N images sees every class in proportion.
  np.testing.assert_allclose(np.bincount(ey[:1000], minlength=10) / 1000,
                             0.1, atol=0.03)
  (_, _), (ex2, ey2) = cifar10.load_arrays()
  np.testing.assert_array_equal(ey, ey2)  # one fixed order on every load
  ds = load_dataset("cifar10", num_val=1000, max_train=2000)
  assert ds.name == src.label and ds.augment == "crop_flip"
  assert ds.name == ("CIFAR-10 (JPEG copy)" if src.kind == "jpeg"
                     else "CIFAR-10")
  # Real colour images: channel means differ (0.49 / 0.48 / 0.44 on CIFAR).
  assert ds.mean[0] - ds.mean[2] > 0.02


def test_cifar10_missing_archive_names_the_fix(tmp_path):
  from lrmeta.data import cifar10
  with pytest.raises(FileNotFoundError, match="LRMETA_CIFAR10_JPEG"):
    cifar10.load_arrays(str(tmp_path))


def test_empty_data_dir_from_env_is_an_error_not_a_fallback(tmp_path,
                                                             monkeypatch):
  """A set LRMETA_DATA_DIR that lacks the files never falls back to the
  Debian copy; the message names the variable and no nonexistent keys."""
  monkeypatch.setenv("LRMETA_DATA_DIR", str(tmp_path))
  from lrmeta.data import DataNotFoundError, locate
  for load in (fashion_mnist.load_arrays, lambda: load_dataset("fashion_mnist"),
               lambda: locate("fashion_mnist")):
    with pytest.raises(DataNotFoundError, match="LRMETA_DATA_DIR") as e:
      load()
    assert str(tmp_path) in str(e.value)
    assert "data.data_dir" not in str(e.value)
    assert "data.source" not in str(e.value)
  monkeypatch.setenv("LRMETA_DATA_DIR", str(tmp_path / "nope"))
  with pytest.raises(DataNotFoundError, match="no such folder"):
    locate("fashion_mnist")


def test_empty_data_dir_from_the_key_is_an_error(tmp_path):
  from lrmeta.data import DataNotFoundError, locate
  with pytest.raises(DataNotFoundError, match="task.data_dir") as e:
    load_dataset("fashion_mnist", data_dir=str(tmp_path))
  assert "data.data_dir" not in str(e.value)
  # A folder with only some of the files names the missing ones.
  (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x01")
  with pytest.raises(DataNotFoundError, match="t10k-labels") as e:
    locate("fashion_mnist", str(tmp_path))
  assert "train-images" not in str(e.value)


def test_data_dir_key_wins_over_env(tmp_path, monkeypatch):
  monkeypatch.setenv("LRMETA_DATA_DIR", str(tmp_path))
  assert fashion_mnist.resolve_dir(fashion_mnist.DEBIAN_DIR) == pathlib.Path(
      fashion_mnist.DEBIAN_DIR)
  monkeypatch.delenv("LRMETA_DATA_DIR")
  assert fashion_mnist.resolve_dir() == pathlib.Path(fashion_mnist.DEBIAN_DIR)


def test_cifar10_env_archive_must_be_usable(tmp_path, monkeypatch):
  from lrmeta.data import DataNotFoundError, cifar10, locate
  monkeypatch.setenv("LRMETA_CIFAR10_JPEG", str(tmp_path))
  with pytest.raises(DataNotFoundError, match="LRMETA_CIFAR10_JPEG="):
    locate("cifar10")
  (tmp_path / "cifar10-jpeg.tar.gz").write_text("not a gzip file")
  with pytest.raises(DataNotFoundError, match="not a gzip archive"):
    cifar10.resolve_source()
  with pytest.raises(DataNotFoundError, match="task.data_dir"):
    locate("cifar10", str(tmp_path / "missing"))


def test_mlrsnet_official_config_carves_a_class_balanced_meta_set():
  from lrmeta.experiments.build import build_task
  from lrmeta.experiments.config import load_config
  root = pathlib.Path(__file__).resolve().parents[1]
  cfg = load_config(f"{root}/configs/mlrsnet_fmnist.py:small_official")
  assert cfg.task.balanced_val and cfg.task.num_val == 1000
  task = build_task(cfg)
  np.testing.assert_array_equal(
      np.bincount(np.asarray(task.dataset.val_y), minlength=10),
      np.full(10, 100))
  assert task.dataset.num_train == 12800
