"""CIFAR-10 from the first source a user has: the JPEG copy, or TFDS.

Sources are tried in this order (:func:`resolve_source`), and the one used is
named in every run's output and results folder:

1. ``task.data_dir`` (the ``data_dir`` argument), else ``$LRMETA_CIFAR10_JPEG``:
   the JPEG archive ``cifar10-jpeg.tar.gz`` or the folder holding it. A place
   set here must hold the archive: there is no fall-back.
2. The JPEG copy beside the project, ``../shared/data/cifar10-jpeg/`` (where
   this project's machines and CI keep it).
3. TFDS ``cifar10`` (the official data): read from the TFDS data dir
   (``$TFDS_DATA_DIR``, default ``~/tensorflow_datasets``) when ``cifar10``
   is prepared there, or downloaded into it when ``$LRMETA_TFDS_DOWNLOAD=1``
   (needs a network and TensorFlow, ``pip install -e '.[tfds]'``). Nothing
   is downloaded unless asked for.

The JPEG copy holds all 60,000 images re-encoded as JPEG (quality 75):
accuracies on it run a few points below canonical CIFAR-10, so results on it
are labelled "CIFAR-10 (JPEG copy)", results on TFDS data "CIFAR-10". The
copy's decoded arrays are cached as ``.npz`` in the user's cache
(``LRMETA_CACHE_DIR``, default ``~/.cache/lrmeta``) because decoding takes
about 20 s; the cache is a copy of a source, never a source itself.

A TFDS data dir prepared in ``array_record`` format is read with
``tfds.data_source`` (no TensorFlow needed); one in TFDS's default
``tfrecord`` format, and a download, go through ``tfds.load`` and need
TensorFlow.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pathlib
import re
import tarfile
from collections.abc import Sequence
import numpy as np

from lrmeta.data.base import DataNotFoundError, Source

ENV_VAR = "LRMETA_CIFAR10_JPEG"
DOWNLOAD_VAR = "LRMETA_TFDS_DOWNLOAD"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
           "horse", "ship", "truck")
JPEG_NAME = "CIFAR-10 (JPEG copy)"
TFDS_NAME = "CIFAR-10"
_ARCHIVE = "cifar10-jpeg.tar.gz"
_BESIDE = pathlib.Path("shared") / "data" / "cifar10-jpeg"
_FIX = (f"set {ENV_VAR} or config key task.data_dir to {_ARCHIVE} or the "
        "folder holding it (the project's shared/data/cifar10-jpeg/)")


def _archive_in(cand: str | os.PathLike) -> pathlib.Path | None:
  p = pathlib.Path(cand)
  if p.is_dir():
    p = p / _ARCHIVE
  return p if p.is_file() else None


def _set_archive(path: str, origin: str) -> pathlib.Path:
  """The archive at a place the user set; no fall-back if it is unusable."""
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


def beside_project() -> list[pathlib.Path]:
  """Where the JPEG copy beside the project may be: ``shared/data/
  cifar10-jpeg`` in the checkout's parent folder, in the working folder's
  parent and in the checkout itself (duplicates dropped)."""
  here = pathlib.Path(__file__).resolve().parents[2]
  out = []
  for base in (here.parent, pathlib.Path.cwd().resolve().parent, here):
    if base / _BESIDE not in out:
      out.append(base / _BESIDE)
  return out


def tfds_data_dir() -> pathlib.Path:
  """TFDS's data dir: ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``
  (TFDS's own default)."""
  return pathlib.Path(os.environ.get("TFDS_DATA_DIR")
                      or pathlib.Path.home() / "tensorflow_datasets")


def tfds_prepared(data_dir: str | os.PathLike) -> str:
  """The file format of ``cifar10`` prepared in a TFDS data dir (read from
  its ``dataset_info.json``, newest version first), or ``""`` if none is.
  Reads no TFDS code."""
  root = pathlib.Path(data_dir) / "cifar10"
  if not root.is_dir():
    return ""
  versions = sorted((p for p in root.iterdir()
                     if re.fullmatch(r"\d+\.\d+\.\d+", p.name)
                     and (p / "dataset_info.json").is_file()),
                    key=lambda p: tuple(int(v) for v in p.name.split(".")),
                    reverse=True)
  if not versions:
    return ""
  info = json.loads((versions[0] / "dataset_info.json").read_text())
  return info.get("fileFormat") or "tfrecord"


def _has_tensorflow() -> bool:
  return importlib.util.find_spec("tensorflow") is not None


def missing_message(search: Sequence[str | os.PathLike],
                    data_dir: str | os.PathLike) -> str:
  """The one line naming the three ways to get CIFAR-10 (``search``: the
  folders looked in beside the project; ``data_dir``: the TFDS data dir)."""
  looked = ", ".join(str(p) for p in search)
  return (f"CIFAR-10 not found; get it one of three ways: (1) set {ENV_VAR} "
          f"(or config key task.data_dir) to the JPEG copy {_ARCHIVE} or its "
          f"folder; (2) put that copy in ../shared/data/cifar10-jpeg/ beside "
          f"the project (looked in: {looked}); (3) TFDS cifar10, the official "
          f"data: prepare it in the TFDS data dir ({data_dir}; TFDS_DATA_DIR "
          f"moves it), or pip install -e '.[tfds]' and set {DOWNLOAD_VAR}=1 "
          "to download it (needs a network)")


def _tfds_source(data_dir: pathlib.Path, download: bool) -> Source | None:
  """TFDS ``cifar10`` in ``data_dir`` if prepared there (or to be
  downloaded when ``download``); ``None`` when neither."""
  fmt = tfds_prepared(data_dir)
  if not fmt and not download:
    return None
  if fmt != "array_record" and not _has_tensorflow():
    what = (f"TFDS cifar10 in {data_dir} is in {fmt} format" if fmt
            else f"{DOWNLOAD_VAR}=1 downloads TFDS cifar10")
    raise DataNotFoundError(f"{what}, which needs TensorFlow: pip install -e "
                            "'.[tfds]'")
  return Source(TFDS_NAME, "tfds", str(data_dir),
                "the TFDS data dir" if fmt else f"{DOWNLOAD_VAR}=1", fmt)


def resolve_source(data_dir: str | None = None, *,
                   search: Sequence[str | os.PathLike] | None = None,
                   download: bool | None = None) -> Source:
  """The first CIFAR-10 source of the chain (see the module docstring).

  Reads no images and no TFDS code: only checks files and folders.

  Args:
    data_dir: the JPEG archive or its folder (config key ``task.data_dir``).
    search: the folders of step 2 (default :func:`beside_project`).
    download: whether step 3 may download TFDS ``cifar10`` when it is not
      prepared (default: ``$LRMETA_TFDS_DOWNLOAD`` is ``1``).

  Returns:
    The :class:`Source` to load.

  Raises:
    DataNotFoundError: a place set by ``data_dir`` or ``$LRMETA_CIFAR10_JPEG``
      is unusable (naming it), TFDS data that needs TensorFlow without it,
      or no source at all (:func:`missing_message`, one line).
  """
  if data_dir:
    return Source(JPEG_NAME, "jpeg", str(_set_archive(
        data_dir, f"data_dir {data_dir!r} (config key task.data_dir)")),
                  "config key task.data_dir")
  if os.environ.get(ENV_VAR):
    path = os.environ[ENV_VAR]
    return Source(JPEG_NAME, "jpeg",
                  str(_set_archive(path, f"{ENV_VAR}={path!r}")), ENV_VAR)
  search = beside_project() if search is None else search
  for cand in search:
    found = _archive_in(cand)
    if found is not None:
      return Source(JPEG_NAME, "jpeg", str(found),
                    "the JPEG copy beside the project")
  if download is None:
    download = os.environ.get(DOWNLOAD_VAR, "") == "1"
  tdir = tfds_data_dir()
  src = _tfds_source(tdir, download)
  if src is None:
    raise DataNotFoundError(missing_message(search, tdir))
  return src


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


def load_jpeg_arrays(archive: str | os.PathLike):
  """Returns ``((train_x, train_y), (test_x, test_y))`` of a JPEG archive,
  decoded once and cached (see the module docstring).

  The test split comes in a fixed random order (see ``TEST_ORDER_SEED``).
  """
  archive = pathlib.Path(archive)
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


def load_arrays(data_dir: str | None = None, *,
                source: Source | None = None):
  """Returns ``((train_x, train_y), (test_x, test_y))`` from ``source``
  (default: :func:`resolve_source` of ``data_dir``).

  Images are ``uint8[N, 32, 32, 3]``, labels ``int32[N]``.
  """
  src = source if source is not None else resolve_source(data_dir)
  if src.kind == "jpeg":
    return load_jpeg_arrays(src.path)
  return load_arrays_tfds(src.path, download=src.download)


def _stack(records) -> tuple[np.ndarray, np.ndarray]:
  return (np.stack([np.asarray(r["image"], np.uint8) for r in records]),
          np.asarray([int(r["label"]) for r in records], np.int32))


def load_arrays_tfds(data_dir: str | os.PathLike | None = None, *,
                     download: bool = True):
  """Canonical CIFAR-10 through TFDS, in TFDS's order.

  Data prepared in ``array_record`` format is read with
  ``tfds.data_source`` (no TensorFlow); otherwise ``tfds.load`` reads it,
  downloading it first if it is not prepared and ``download`` is set (needs
  a network and the ``[tfds]`` extra, i.e. TensorFlow).

  Args:
    data_dir: the TFDS data dir (default: :func:`tfds_data_dir`).
    download: allow ``tfds.load`` to download and prepare ``cifar10``.
  """
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  data_dir = str(data_dir if data_dir is not None else tfds_data_dir())
  if tfds_prepared(data_dir) == "array_record":
    return tuple(_stack(tfds.data_source("cifar10", split=split,
                                         data_dir=data_dir, download=False))
                 for split in ("train", "test"))
  if not _has_tensorflow():
    raise DataNotFoundError(
        f"TFDS cifar10 in {data_dir} needs TensorFlow to "
        f"{'read' if tfds_prepared(data_dir) else 'download'}: pip install "
        "-e '.[tfds]'")
  splits = tfds.as_numpy(tfds.load("cifar10", split=["train", "test"],
                                   batch_size=-1, data_dir=data_dir,
                                   download=download))
  return tuple((s["image"].astype(np.uint8), s["label"].astype(np.int32))
               for s in splits)
