"""CIFAR-10: TFDS (online) or the offline JPEG copy.

The offline copy (``shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz``) holds all
60,000 images re-encoded as JPEG (quality 75): accuracies on it run a few
points below canonical CIFAR-10, so results on it are labelled
"CIFAR-10 (JPEG copy)". The decoded arrays are cached as ``.npz`` next to the
user's cache (``LRMETA_CACHE_DIR``, default ``~/.cache/lrmeta``) because
decoding takes about 20 s.
"""

from __future__ import annotations

import io
import os
import pathlib
import tarfile

import numpy as np

from lrmeta.data.base import DataNotFoundError

ENV_VAR = "LRMETA_CIFAR10_JPEG"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
           "horse", "ship", "truck")
JPEG_NAME = "CIFAR-10 (JPEG copy)"
_ARCHIVE = "cifar10-jpeg.tar.gz"
_FIX = (f"set {ENV_VAR} or config key task.data_dir to {_ARCHIVE} or the "
        "folder holding it (the project's shared/data/cifar10-jpeg/)")


def _archive_in(cand: str) -> pathlib.Path | None:
  p = pathlib.Path(cand)
  if p.is_dir():
    p = p / _ARCHIVE
  return p if p.is_file() else None


def resolve_archive(path: str | None = None) -> pathlib.Path:
  """The JPEG archive: ``path`` (config key ``task.data_dir``; the archive or
  its folder) if given, else ``$LRMETA_CIFAR10_JPEG`` if set, else the
  standard ``shared/data/cifar10-jpeg`` folders. A place given by the first
  two must hold a gzip archive: there is no fall-back.

  Raises:
    DataNotFoundError: naming the setting that chose the place.
  """
  if path:
    origin = f"data_dir {path!r} (config key task.data_dir)"
  elif os.environ.get(ENV_VAR):
    path = os.environ[ENV_VAR]
    origin = f"{ENV_VAR}={path!r}"
  else:
    here = pathlib.Path(__file__).resolve().parents[2]
    candidates = [here.parent / "shared" / "data" / "cifar10-jpeg",
                  pathlib.Path.cwd().parent / "shared" / "data" /
                  "cifar10-jpeg",
                  here / "shared" / "data" / "cifar10-jpeg"]
    for cand in candidates:
      found = _archive_in(str(cand))
      if found is not None:
        return found
    raise DataNotFoundError(
        f"CIFAR-10 JPEG archive {_ARCHIVE} not found (looked in: "
        f"{', '.join(str(c) for c in candidates)}): {_FIX}")
  found = _archive_in(path)
  if found is None:
    what = ("no such file or folder" if not pathlib.Path(path).exists()
            else f"no {_ARCHIVE} there")
    raise DataNotFoundError(f"{origin}: {what}; {_FIX}")
  with open(found, "rb") as f:
    if f.read(2) != b"\x1f\x8b":
      raise DataNotFoundError(f"{origin}: {found} is not a gzip archive; "
                              f"{_FIX}")
  return found


def _cache_path(archive: pathlib.Path) -> pathlib.Path:
  root = pathlib.Path(os.environ.get("LRMETA_CACHE_DIR",
                                     pathlib.Path.home() / ".cache" / "lrmeta"))
  stat = archive.stat()
  return root / f"cifar10-jpeg-{stat.st_size}.npz"


def decode_archive(archive: pathlib.Path):
  """Decodes ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` to arrays.

  Images are sorted by (class, file name) so the order is deterministic.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel
  split_items = {"train": [], "test": []}
  with tarfile.open(archive, "r:gz") as tar:
    for member in tar:
      if not member.isfile() or not member.name.endswith(".jpg"):
        continue
      parts = pathlib.PurePosixPath(member.name).parts
      split, cls = parts[-3], parts[-2]
      if split not in split_items or cls not in CLASSES:
        continue
      data = tar.extractfile(member).read()
      img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.uint8)
      if img.shape != (32, 32, 3):
        raise ValueError(f"{member.name}: expected 32x32x3, got {img.shape}")
      split_items[split].append((CLASSES.index(cls), parts[-1], img))
  out = []
  for split in ("train", "test"):
    items = sorted(split_items[split], key=lambda t: (t[0], t[1]))
    if not items:
      raise ValueError(f"{archive}: no {split}/<class>/*.jpg images found")
    out.append((np.stack([t[2] for t in items]),
                np.asarray([t[0] for t in items], np.int32)))
  return tuple(out)


# The archive stores images by class, so its test split is sorted by label:
# an evaluation on the first N test images (``Task.evaluate(...,
# max_examples=N)``) would see one or two classes only. The test split is
# therefore put in one fixed random order (the same on every load, whatever
# the run's seed); the training split is permuted by ``carve_validation``.
TEST_ORDER_SEED = 20201123


def _mix_test(test):
  x, y = test
  perm = np.random.default_rng(TEST_ORDER_SEED).permutation(len(y))
  return x[perm], y[perm]


def load_arrays(path: str | None = None):
  """Returns ``((train_x, train_y), (test_x, test_y))`` of the JPEG copy.

  The test split comes in a fixed random order (see ``TEST_ORDER_SEED``).
  """
  archive = resolve_archive(path)
  cache = _cache_path(archive)
  if cache.is_file():
    with np.load(cache) as z:
      return ((z["train_x"], z["train_y"]),
              _mix_test((z["test_x"], z["test_y"])))
  (tx, ty), (ex, ey) = decode_archive(archive)
  cache.parent.mkdir(parents=True, exist_ok=True)
  tmp = cache.with_suffix(".tmp.npz")
  np.savez(tmp, train_x=tx, train_y=ty, test_x=ex, test_y=ey)
  tmp.replace(cache)
  return (tx, ty), _mix_test((ex, ey))


def load_arrays_tfds(data_dir: str | None = None):
  """Canonical CIFAR-10 through ``tfds.load`` (internet and ``lrmeta[tfds]``)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover
    raise ImportError(
        "source='tfds' needs TensorFlow: pip install -e '.[tfds]'") from e
  splits = tfds.as_numpy(tfds.load("cifar10", split=["train", "test"],
                                   batch_size=-1, data_dir=data_dir))
  return tuple((s["image"].astype(np.uint8), s["label"].astype(np.int32))
               for s in splits)
