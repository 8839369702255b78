"""Fashion-MNIST from local IDX files (offline) or TFDS (online).

Local files come from the Debian package ``dataset-fashion-mnist``
(``apt-get install -y dataset-fashion-mnist`` puts the four official IDX files
in ``/usr/share/datasets/fashion-mnist/``). Pass ``data_dir`` (config key
``task.data_dir``) or set ``LRMETA_DATA_DIR`` to read them elsewhere; a folder
so given must hold the files (directly or in a ``fashion-mnist/`` or
``fashion_mnist/`` subfolder): there is no fall-back to the Debian copy.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import struct

import numpy as np

from lrmeta.data.base import DataNotFoundError

ENV_VAR = "LRMETA_DATA_DIR"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Original gzip mtimes of the official release (see shared/data/README.md):
# restoring them with the file name makes Debian's files byte-identical to the
# official ones, which TFDS's checksum test requires.
_OFFICIAL_MTIME = {"train": 0x59A7E9DE, "t10k": 0x59A7E9F3}
_NAMES = ", ".join(f + "[.gz]" for f in FILES.values())
_INSTALL = ("apt-get update && apt-get install -y dataset-fashion-mnist "
            f"(files land in {DEBIAN_DIR}/)")


def _holding(directory: str) -> tuple[pathlib.Path | None, list[str]]:
  """``(folder holding all four files, [])`` or ``(None, missing names)``."""
  best = list(FILES.values())
  for sub in ("", "fashion-mnist", "fashion_mnist"):
    p = pathlib.Path(directory) / sub
    missing = [stem for stem in FILES.values() if _find(p, stem) is None]
    if not missing:
      return p, []
    if len(missing) < len(best):
      best = missing
  return None, best


def resolve_dir(data_dir: str | None = None) -> pathlib.Path:
  """Returns the directory holding the IDX files, or raises with the fix.

  ``data_dir`` (config key ``task.data_dir``) if given, else
  ``$LRMETA_DATA_DIR`` if set, else the Debian package's folder; a place
  given by the first two must hold the files.

  Raises:
    DataNotFoundError: naming the setting that chose the place.
  """
  if data_dir:
    origin = f"data_dir {data_dir!r} (config key task.data_dir)"
    where, unset = data_dir, "leave task.data_dir empty"
  elif os.environ.get(ENV_VAR):
    where = os.environ[ENV_VAR]
    origin, unset = f"{ENV_VAR}={where!r}", f"unset {ENV_VAR}"
  else:
    found, _ = _holding(DEBIAN_DIR)
    if found is not None:
      return found
    raise DataNotFoundError(
        f"Fashion-MNIST IDX files not found in {DEBIAN_DIR}: install them "
        f"with `{_INSTALL}`, or set {ENV_VAR} or config key task.data_dir to "
        f"a folder holding {_NAMES}")
  if not pathlib.Path(where).is_dir():
    raise DataNotFoundError(
        f"{origin}: no such folder; it must hold the Fashion-MNIST IDX files "
        f"{_NAMES} (or {unset} to use the Debian copy: {_INSTALL})")
  found, missing = _holding(where)
  if found is None:
    raise DataNotFoundError(
        f"{origin}: the folder lacks the Fashion-MNIST IDX files "
        f"{', '.join(m + '[.gz]' for m in missing)} (or {unset} to use the "
        f"Debian copy: {_INSTALL})")
  return found


def _find(directory: pathlib.Path, stem: str) -> pathlib.Path | None:
  for name in (stem + ".gz", stem):
    if (directory / name).is_file():
      return directory / name
  return None


def read_idx(path: pathlib.Path) -> np.ndarray:
  """Reads an IDX file (optionally gzipped) into a uint8 array."""
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
    raise ValueError(f"{path}: not a uint8 IDX file (bad magic {data[:4]!r})")
  ndim = data[3]
  dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
  arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if arr.size != int(np.prod(dims)):
    raise ValueError(f"{path}: header says {dims} but holds {arr.size} bytes")
  return arr.reshape(dims)


def load_arrays(data_dir: str | None = None):
  """Returns ``((train_x, train_y), (test_x, test_y))`` as numpy arrays.

  Images are ``uint8[N, 28, 28, 1]``, labels ``int32[N]``.
  """
  d = resolve_dir(data_dir)
  out = {}
  for key, stem in FILES.items():
    out[key] = read_idx(_find(d, stem))
  tx = out["train_images"][..., None]
  ex = out["test_images"][..., None]
  return ((tx, out["train_labels"].astype(np.int32)),
          (ex, out["test_labels"].astype(np.int32)))


def load_arrays_tfds(data_dir: str | None = None,
                     manual_dir: str | None = None):
  """Loads through ``tfds.load('fashion_mnist')`` (needs ``lrmeta[tfds]``).

  With ``manual_dir`` (e.g. from :func:`prepare_tfds_manual_dir`) TFDS builds
  from local files and needs no internet.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover - depends on the extra
    raise ImportError(
        "source='tfds' needs TensorFlow: pip install -e '.[tfds]'") from e
  kw = {}
  if manual_dir:
    kw["download_and_prepare_kwargs"] = {
        "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)}
  splits = tfds.as_numpy(tfds.load("fashion_mnist", split=["train", "test"],
                                   batch_size=-1, data_dir=data_dir, **kw))
  return tuple((s["image"].astype(np.uint8), s["label"].astype(np.int32))
               for s in splits)


def prepare_tfds_manual_dir(out_dir: str, data_dir: str | None = None) -> str:
  """Writes the official (TFDS-checksummed) ``.gz`` files from Debian's copies.

  Debian recompressed nothing but rewrote the gzip headers (name dropped,
  mtime zeroed). The deflate stream is untouched, so restoring the 10-byte
  header plus the original file name gives back the official bytes.
  """
  src = resolve_dir(data_dir)
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  for stem in FILES.values():
    raw = (src / (stem + ".gz")).read_bytes()
    if raw[:3] != b"\x1f\x8b\x08":
      raise ValueError(f"{src / stem}.gz is not a gzip file")
    flags = raw[3]
    if flags & ~0x08:
      raise ValueError(f"{stem}.gz: unexpected gzip flags {flags:#x}")
    body = raw[10:]
    if flags & 0x08:  # already has a name: skip it
      body = body[body.index(b"\x00") + 1:]
    mtime = _OFFICIAL_MTIME[stem.split("-")[0]]
    header = (b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + raw[8:10] +
              stem.encode() + b"\x00")
    (out / (stem + ".gz")).write_bytes(header + body)
  return str(out)
