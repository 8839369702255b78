"""CIFAR-10's source chain: a set JPEG copy, the copy beside the project,
TFDS ``cifar10``, else one line naming all three.

Every source here is real and small: a JPEG archive in the copy's layout
(``train/<class>/NNNN.jpg``, ``test/<class>/NNNN.jpg``) built from seeded
images, and a TFDS data dir holding ``cifar10`` in ``array_record`` format,
prepared by TFDS's own CIFAR-10 builder (its ``DatasetInfo`` and features)
from the same images, read back through ``tfds.data_source``. What stays
untested offline: TFDS's download of the official archive and the
``tfds.load`` path (``tfrecord`` data, which needs TensorFlow).
"""

from __future__ import annotations

import io
import pathlib
import tarfile

import numpy as np
import pytest
from PIL import Image

from lrmeta.data import DataNotFoundError, cifar10, data_source, load_dataset

TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 2


def _images(seed: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
  """Smooth random colour images (JPEG keeps them close), class-sorted."""
  rng = np.random.default_rng(seed)
  n = per_class * len(cifar10.CLASSES)
  coarse = rng.integers(0, 256, (n, 4, 4, 3)).astype(np.uint8)
  x = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
  return x, np.repeat(np.arange(len(cifar10.CLASSES)), per_class)


def _write_archive(path: pathlib.Path, splits) -> pathlib.Path:
  """A ``cifar10-jpeg.tar.gz`` in the JPEG copy's layout."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with tarfile.open(path, "w:gz") as tar:
    for split, (x, y) in splits.items():
      for i, (img, label) in enumerate(zip(x, y)):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=75)
        info = tarfile.TarInfo(
            f"{split}/{cifar10.CLASSES[label]}/{i:04d}.jpg")
        info.size = buf.tell()
        buf.seek(0)
        tar.addfile(info, buf)
  return path


def _prepare_tfds(data_dir: pathlib.Path, splits) -> None:
  """TFDS ``cifar10`` in ``array_record`` format, written by TFDS's CIFAR-10
  builder (same name, version, info and features) from local images
  instead of the downloaded archive; images go in as PNG bytes, so no
  TensorFlow is needed."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.image_classification import cifar

  def png(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    buf.seek(0)
    return buf

  with tfds.core.registered.skip_registration():
    class LocalCifar10(cifar.Cifar10):  # pylint: disable=unused-variable
      """``cifar10`` from the images in ``splits``."""

      def _split_generators(self, dl_manager):
        return {split: self._local(split) for split in splits}

      def _local(self, split):
        x, y = splits[split]
        for i in range(len(y)):
          yield i, {"id": f"{split}_{i:05d}", "image": png(x[i]),
                    "label": int(y[i])}

    LocalCifar10.name = "cifar10"
    LocalCifar10(data_dir=str(data_dir),
                 file_format="array_record").download_and_prepare(
                     download_dir=str(data_dir / "downloads"))


@pytest.fixture
def sources(tmp_path, monkeypatch):
  """Three real sources, each holding different images: a set archive, an
  archive beside a project folder, a prepared TFDS data dir."""
  monkeypatch.setenv("LRMETA_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.delenv(cifar10.ENV_VAR, raising=False)
  monkeypatch.delenv(cifar10.DOWNLOAD_VAR, raising=False)
  data = {}
  for k, (tr, te) in {"set": (1, 2), "beside": (3, 4), "tfds": (5, 6)}.items():
    data[k] = {"train": _images(tr, TRAIN_PER_CLASS),
               "test": _images(te, TEST_PER_CLASS)}
  _write_archive(tmp_path / "mine" / "cifar10-jpeg.tar.gz", data["set"])
  beside = tmp_path / "shared" / "data" / "cifar10-jpeg"
  _write_archive(beside / "cifar10-jpeg.tar.gz", data["beside"])
  return tmp_path, beside, data


def _same_images(got, want, tol: float) -> bool:
  """The same (label, image) pairs in any order (TFDS shuffles, the JPEG
  copy mixes its test split), each image within ``tol`` mean absolute pixel
  error of its match (JPEG: about 10 here; distinct images: about 85)."""
  (gx, gy), (wx, wy) = got, want
  if gx.shape != wx.shape or sorted(gy) != sorted(wy):
    return False
  g = gx.reshape(len(gx), -1).astype(float)
  w = wx.reshape(len(wx), -1).astype(float)
  dist = np.abs(g[:, None] - w[None]).mean(-1)
  dist[gy[:, None] != wy[None]] = np.inf
  match = dist.argmin(1)
  return (len(set(match)) == len(match)
          and bool(np.all(dist[np.arange(len(g)), match] <= tol)))


def test_chain_order_set_copy_then_beside_then_tfds_then_one_line(
    sources, monkeypatch):
  tmp, beside, data = sources
  search = [tmp / "no_project" / "shared" / "data" / "cifar10-jpeg", beside]
  monkeypatch.setenv(cifar10.ENV_VAR, str(tmp / "mine"))
  _prepare_tfds(tmp / "tfds", data["tfds"])

  # 1. the set copy wins over everything else; the config key over the
  # variable.
  src = cifar10.resolve_source(search=search)
  assert (src.kind, src.how) == ("jpeg", cifar10.ENV_VAR)
  assert src.path == str(tmp / "mine" / "cifar10-jpeg.tar.gz")
  key = cifar10.resolve_source(str(beside), search=search)
  assert (key.path, key.how) == (str(beside / "cifar10-jpeg.tar.gz"),
                                 "config key task.data_dir")
  train, test = cifar10.load_arrays(source=src)
  assert _same_images(train, data["set"]["train"], 20.0)
  assert _same_images(test, data["set"]["test"], 20.0)
  assert not _same_images(train, data["beside"]["train"], 20.0)

  # 2. without it, the copy beside the project.
  monkeypatch.delenv(cifar10.ENV_VAR)
  src = cifar10.resolve_source(search=search)
  assert (src.kind, src.path, src.label) == (
      "jpeg", str(beside / "cifar10-jpeg.tar.gz"), "CIFAR-10 (JPEG copy)")
  assert _same_images(cifar10.load_arrays(source=src)[0],
                      data["beside"]["train"], 20.0)

  # 3. without both, TFDS cifar10 prepared in TFDS_DATA_DIR: the official
  # data's name, pixels exact (PNG), read without TensorFlow.
  src = cifar10.resolve_source(search=search[:1])
  assert (src.kind, src.path, src.file_format, src.label) == (
      "tfds", str(tmp / "tfds"), "array_record", "CIFAR-10")
  assert not src.download and "TFDS data dir" in src.describe()
  train, test = cifar10.load_arrays(source=src)
  assert train[0].dtype == np.uint8 and train[1].dtype == np.int32
  assert _same_images(train, data["tfds"]["train"], 0.0)
  assert _same_images(test, data["tfds"]["test"], 0.0)

  # None: one line naming the three ways, and where it looked.
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp / "empty"))
  with pytest.raises(DataNotFoundError) as e:
    cifar10.resolve_source(search=search[:1])
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith("CIFAR-10 not found")
  for part in (cifar10.ENV_VAR, "task.data_dir", "../shared/data/cifar10-jpeg",
               str(search[0]), "TFDS cifar10", str(tmp / "empty"),
               "LRMETA_TFDS_DOWNLOAD=1", ".[tfds]"):
    assert part in msg, part


def test_tfds_download_only_when_asked(sources, monkeypatch):
  """Step 3 downloads only on request; without TensorFlow the request is a
  one-line error before anything is read."""
  tmp, _, _ = sources
  empty = [tmp / "nowhere"]
  with pytest.raises(DataNotFoundError, match="CIFAR-10 not found"):
    cifar10.resolve_source(search=empty)
  try:
    src = cifar10.resolve_source(search=empty, download=True)
  except DataNotFoundError as e:
    assert not cifar10._has_tensorflow()  # pylint: disable=protected-access
    assert "needs TensorFlow" in str(e) and "\n" not in str(e)
  else:
    assert src.download and src.how == "LRMETA_TFDS_DOWNLOAD=1"
    assert src.path == str(tmp / "tfds") and src.label == "CIFAR-10"
  assert not (tmp / "tfds").exists()  # nothing was fetched or written


def test_a_set_place_that_is_unusable_is_an_error_not_a_fallback(
    sources, monkeypatch):
  tmp, beside, _ = sources
  monkeypatch.setenv(cifar10.ENV_VAR, str(tmp / "missing"))
  with pytest.raises(DataNotFoundError, match="LRMETA_CIFAR10_JPEG="):
    cifar10.resolve_source(search=[beside])


def test_dataset_and_results_name_the_source(sources, monkeypatch):
  """``load_dataset`` labels the data by its source; ``data_source`` (what a
  run prints and writes to data.json) names the step that chose it."""
  tmp, _, _ = sources
  monkeypatch.setenv(cifar10.ENV_VAR, str(tmp / "mine"))
  src = data_source("cifar10")
  assert src.how == cifar10.ENV_VAR and "JPEG copy" in src.describe()
  ds = load_dataset("cifar10", num_val=5, augment="none")
  assert ds.name == "CIFAR-10 (JPEG copy)"
  assert ds.num_train + 5 == TRAIN_PER_CLASS * 10
  assert src.as_dict()["label"] == ds.name


def test_data_check_names_the_missing_dataset(sources, monkeypatch, capsys):
  """``python3 -m lrmeta.data`` (run by .ci/run before the suite): one line
  per dataset, status 1 naming the one without a source."""
  from lrmeta.data.__main__ import main
  tmp, _, _ = sources
  monkeypatch.setenv(cifar10.ENV_VAR, str(tmp / "mine"))
  assert main([]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [x.split(":")[0] for x in lines] == ["fashion_mnist", "cifar10"]
  monkeypatch.setenv(cifar10.ENV_VAR, str(tmp / "missing"))
  assert main(["cifar10"]) == 1
  (line,) = capsys.readouterr().out.splitlines()
  assert line.startswith("cifar10: missing: LRMETA_CIFAR10_JPEG=")


def test_marked_tests_skip_once_or_fail_under_require_data(tmp_path):
  """The ``cifar10`` marker of tests/conftest.py on a machine where CIFAR-10
  has no usable source (here: a set place without the archive): skipped
  with the reason in one summary line; failed under LRMETA_REQUIRE_DATA=1."""
  import os
  import shutil
  import subprocess
  import sys
  here = pathlib.Path(__file__).parent
  shutil.copy(here / "conftest.py", tmp_path / "conftest.py")
  (tmp_path / "test_needs.py").write_text(
      "import pytest\n\n"
      "@pytest.mark.cifar10\ndef test_a():\n  pass\n\n"
      "@pytest.mark.cifar10\ndef test_b():\n  pass\n\n"
      "def test_c():\n  pass\n")
  (tmp_path / "pytest.ini").write_text(
      "[pytest]\nmarkers =\n  cifar10: needs CIFAR-10\n")
  env = {**os.environ, cifar10.ENV_VAR: str(tmp_path / "missing"),
         "PYTHONPATH": str(here.parent)}
  env.pop("LRMETA_REQUIRE_DATA", None)

  def run(**extra):
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p",
                        "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                       env={**env, **extra}, capture_output=True, text=True,
                       timeout=120, check=False)
    return r.returncode, r.stdout

  code, out = run()
  assert code == 0 and "1 passed, 2 skipped" in out, out
  reasons = [x for x in out.splitlines() if "LRMETA_CIFAR10_JPEG=" in x]
  assert len(reasons) == 1 and reasons[0].startswith("SKIPPED [2]"), out
  code, out = run(LRMETA_REQUIRE_DATA="1")
  assert code == 1 and "1 passed, 2 errors" in out, out  # failed in setup
  assert "LRMETA_REQUIRE_DATA=1: LRMETA_CIFAR10_JPEG=" in out, out
