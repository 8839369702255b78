"""Fashion-MNIST from local IDX files (offline) or TFDS (online).

Local files come from the Debian package ``dataset-fashion-mnist``
(``apt-get install -y dataset-fashion-mnist`` puts the four official IDX files
in ``/usr/share/datasets/fashion-mnist/``). Set ``LRMETA_DATA_DIR`` or pass
``data_dir`` to read them elsewhere.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import struct

import numpy as np

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
_MISSING = (
    "Fashion-MNIST IDX files not found in {where}. Install them with\n"
    "    apt-get update && apt-get install -y dataset-fashion-mnist\n"
    "(files land in /usr/share/datasets/fashion-mnist/), or point "
    "LRMETA_DATA_DIR / data.data_dir at a folder holding {names}, or use "
    "data.source='tfds' on a machine with internet.")


def resolve_dir(data_dir: str | None = None) -> pathlib.Path:
  """Returns the directory holding the IDX files, or raises with the fix."""
  candidates = [data_dir] if data_dir else [
      os.environ.get("LRMETA_DATA_DIR"), DEBIAN_DIR]
  for cand in candidates:
    if not cand:
      continue
    for sub in ("", "fashion-mnist", "fashion_mnist"):
      p = pathlib.Path(cand) / sub
      if _find(p, FILES["train_images"]) is not None:
        return p
  where = ", ".join(str(c) for c in candidates if c)
  raise FileNotFoundError(_MISSING.format(
      where=where, names=", ".join(f + "[.gz]" for f in FILES.values())))


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
    path = _find(d, stem)
    if path is None:
      raise FileNotFoundError(_MISSING.format(where=d, names=stem + "[.gz]"))
    out[key] = read_idx(path)
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
        "data.source='tfds' needs TensorFlow: pip install -e '.[tfds]'") from e
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
