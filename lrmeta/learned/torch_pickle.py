"""Reads files written by ``torch.save`` without importing torch.

Two formats are read: the legacy one (``torch.save(...,
_use_new_zipfile_serialization=False)``, and every file written by torch
before 1.6) and the zip archive torch writes by default since 1.6. Both
pickle the object with tensors replaced by references to *storages* (flat
typed buffers); a tensor is rebuilt from its storage, offset, size and
stride by ``torch._utils._rebuild_tensor_v2``.

* Legacy: five pickles in a row (magic number, protocol version, system
  info, the object, the list of storage keys), then, per storage key in that
  order, an 8-byte little-endian element count followed by the raw data.
* Zip: ``<name>/data.pkl`` holds the object; storage ``key`` is the file
  ``<name>/data/<key>``.

Only what a saved state dict or a pickled log needs is resolved (tensors of
the plain numeric dtypes, ``OrderedDict``, NumPy scalars, Python
containers); any other
global is refused, so loading a file never runs code from it. Tensors come
back as NumPy arrays (a copy, C-contiguous).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
  """Stands for ``torch.FloatStorage`` and its kin in a pickle."""

  def __init__(self, dtype):
    self.dtype = np.dtype(dtype)


class _Storage:
  """A storage reference whose data is read after the object pickle."""

  def __init__(self, key: str, dtype: np.dtype):
    self.key, self.dtype, self.data = key, dtype, None


class _Tensor:
  """A tensor waiting for its storage's data."""

  def __init__(self, storage: _Storage, offset: int, size, stride):
    self.storage, self.offset = storage, int(offset)
    self.size, self.stride = tuple(size), tuple(stride)

  def to_numpy(self) -> np.ndarray:
    data = self.storage.data
    if not self.size:
      return np.array(data[self.offset])
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[self.offset:], shape=self.size,
        strides=tuple(s * itemsize for s in self.stride), writeable=False)
    return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride,
                       requires_grad=False, backward_hooks=None,
                       metadata=None):
  del requires_grad, backward_hooks, metadata
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  del requires_grad, backward_hooks
  return data


def _numpy_scalar(dtype, data=None):
  """``numpy.core.multiarray.scalar`` without the object dtype."""
  dtype = np.dtype(dtype)
  if dtype.hasobject:
    raise pickle.UnpicklingError("refusing a NumPy object scalar")
  return np.frombuffer(data, dtype)[0]


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
  if encoding not in ("latin1", "latin-1"):
    raise pickle.UnpicklingError(f"unexpected bytes encoding {encoding!r}")
  return text.encode("latin1")


class _Unpickler(pickle.Unpickler):
  """Resolves only the globals a state dict needs; storages by key."""

  def __init__(self, file, storages: dict):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module, name):
    if module == "collections" and name == "OrderedDict":
      return collections.OrderedDict
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
      return _rebuild_tensor_v2
    if module == "torch._utils" and name == "_rebuild_parameter":
      return _rebuild_parameter
    # NumPy scalars and their dtypes (e.g. floats in a pickled result log).
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and (
        name == "scalar"):
      return _numpy_scalar
    if module == "numpy" and name == "dtype":
      return np.dtype
    if module == "_codecs" and name == "encode":  # bytes in pickle protocol 2
      return _latin1_bytes
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(_STORAGE_DTYPES[name])
    raise pickle.UnpicklingError(
        f"refusing to load {module}.{name}: not part of a tensor state dict")

  def persistent_load(self, pid):
    # ('storage', storage type, key, location, numel[, view metadata])
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
    stype, key = pid[1], str(pid[2])
    if not isinstance(stype, _StorageType):
      raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
    if key not in self._storages:
      self._storages[key] = _Storage(key, stype.dtype)
    return self._storages[key]


def _materialise(obj: Any) -> Any:
  if isinstance(obj, _Tensor):
    return obj.to_numpy()
  if isinstance(obj, collections.OrderedDict):
    return collections.OrderedDict((k, _materialise(v)) for k, v in
                                   obj.items())
  if isinstance(obj, dict):
    return {k: _materialise(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v) for v in obj)
  return obj


def _load_legacy(f: BinaryIO) -> Any:
  magic = pickle.load(f)
  if magic != LEGACY_MAGIC:
    raise ValueError("not a torch.save file (wrong magic number)")
  protocol = pickle.load(f)
  if protocol != 1001:
    raise ValueError(f"unsupported torch.save protocol {protocol}")
  sys_info = pickle.load(f)
  if not sys_info.get("little_endian", True):
    raise ValueError("big-endian torch files are not supported")
  storages: dict[str, _Storage] = {}
  obj = _Unpickler(f, storages).load()
  keys = pickle.load(f)
  for key in keys:
    (numel,) = struct.unpack("<q", f.read(8))
    st = storages[str(key)]
    nbytes = numel * st.dtype.itemsize
    buf = f.read(nbytes)
    if len(buf) != nbytes:
      raise ValueError(f"storage {key}: file ends early")
    st.data = np.frombuffer(buf, st.dtype)
  return _materialise(obj)


def _load_zip(path_or_file) -> Any:
  with zipfile.ZipFile(path_or_file) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
      raise ValueError("not a torch zip archive (no single data.pkl)")
    root = pkl[0][:-len("data.pkl")]
    order = z.read(root + "byteorder").decode() if (
        root + "byteorder") in names else "little"
    if order != "little":
      raise ValueError("big-endian torch files are not supported")
    storages: dict[str, _Storage] = {}
    obj = _Unpickler(io.BytesIO(z.read(pkl[0])), storages).load()
    for key, st in storages.items():
      st.data = np.frombuffer(z.read(f"{root}data/{key}"), st.dtype)
  return _materialise(obj)


def load(path: str) -> Any:
  """The object a ``torch.save`` file holds, tensors as NumPy arrays.

  Args:
    path: a file written by ``torch.save`` (legacy or zip format).

  Raises:
    ValueError: not a torch file, or a format detail not supported here.
    pickle.UnpicklingError: the pickle names something other than tensors
      and containers.
  """
  if zipfile.is_zipfile(path):
    return _load_zip(path)
  with open(path, "rb") as f:
    return _load_legacy(f)


__all__ = ["LEGACY_MAGIC", "load"]
