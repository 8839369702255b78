"""Shared fixtures: no network, small real data, CPU only."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")


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
