"""Shared fixtures: no network, small real data, CPU only.

Tests that need CIFAR-10 carry the marker ``cifar10``. When no source of the
chain in :mod:`lrmeta.data.cifar10` has it they are skipped with its
one-line reason (the summary of ``-ra`` folds them into one line), unless
``LRMETA_REQUIRE_DATA=1`` (set by ``.ci/run``): then each fails, so CI
never passes by skipping them. Tests never download: TFDS's download opt-in
is ignored here.
"""

from __future__ import annotations

import functools
import os
import socket

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.pop("LRMETA_TFDS_DOWNLOAD", None)

REQUIRE_VAR = "LRMETA_REQUIRE_DATA"


@functools.lru_cache(maxsize=None)
def cifar10_source() -> tuple[str, str]:
  """``(where CIFAR-10 comes from, "")`` or ``("", the one-line reason it
  is missing)``, looked up once per session."""
  from lrmeta.data import DataNotFoundError, data_source
  try:
    return data_source("cifar10").describe(), ""
  except DataNotFoundError as e:
    return "", " ".join(str(e).split())


def pytest_report_header(config):
  found, missing = cifar10_source()
  return [f"CIFAR-10: {found}" if found else
          f"CIFAR-10: none; tests marked cifar10 "
          f"{'fail' if os.environ.get(REQUIRE_VAR) == '1' else 'skip'}"]


def pytest_runtest_setup(item):
  if item.get_closest_marker("cifar10") is None:
    return
  _, missing = cifar10_source()
  if not missing:
    return
  if os.environ.get(REQUIRE_VAR) == "1":
    pytest.fail(f"{REQUIRE_VAR}=1: {missing}", pytrace=False)
  pytest.skip(missing)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
  """Any attempt to open a network connection fails the test."""
  def guard(*args, **kwargs):
    raise RuntimeError("tests must not touch the network")
  monkeypatch.setattr(socket.socket, "connect", guard)
  monkeypatch.setattr(socket, "create_connection", guard)


@pytest.fixture(scope="session")
def fmnist_small():
  """Real Fashion-MNIST, 4,000 training and 1,000 validation images."""
  from lrmeta.data import load_dataset
  return load_dataset("fashion_mnist", num_val=1000, max_train=4000, seed=0)


@pytest.fixture(scope="session")
def fmnist_task(fmnist_small):
  """Small CNN on the small Fashion-MNIST, batch 32."""
  from lrmeta.tasks import make_task
  return make_task("fashion_mnist", "small_cnn", batch_size=32,
                   data=fmnist_small,
                   model_kwargs={"features": (4, 8), "hidden": 32})
