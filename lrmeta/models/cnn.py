"""MLP and plain CNNs: the LRBench models and the Xu et al. (2019) CNN.

Every model is called as ``model.apply(variables, x, train=...)``; models
without BatchNorm ignore ``train``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from lrmeta.models.layers import Conv


class MLP(nn.Module):
  """Fully connected ReLU network on flattened images."""

  num_classes: int
  hidden: Sequence[int] = (256, 256)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    x = x.reshape(x.shape[0], -1)
    for h in self.hidden:
      x = nn.relu(nn.Dense(h)(x))
    return nn.Dense(self.num_classes)(x)


class LeNet5(nn.Module):
  """LeNet-5 (LeCun et al. 1998) as used by LRBench: conv5-6, pool, conv5-16,
  pool, dense 120, dense 84, output. Tanh activations replaced by ReLU and
  subsampling by max-pooling, as in LRBench's Caffe/TF definitions."""

  num_classes: int
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    x = nn.relu(Conv(6, (5, 5), conv_impl=self.conv_impl)(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(Conv(16, (5, 5), padding="VALID", conv_impl=self.conv_impl)(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(120)(x))
    x = nn.relu(nn.Dense(84)(x))
    return nn.Dense(self.num_classes)(x)


class CNN3(nn.Module):
  """LRBench's CNN3 (the Caffe ``cifar10_quick`` network): three 5x5 conv
  layers (32, 32, 64 filters) each followed by 3x3/2 pooling, then dense 64
  and the output layer."""

  num_classes: int
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    for f in (32, 32, 64):
      x = nn.relu(Conv(f, (5, 5), conv_impl=self.conv_impl)(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(self.num_classes)(x)


class SmallCNN(nn.Module):
  """Two conv + two dense layers, the Fashion-MNIST trainee of Xu, Dai, Kemp
  and Metz (2019). The paper gives the layer types, not the widths; the
  defaults (5x5 conv 16 and 32 filters, dense 128) keep a step cheap on CPU."""

  num_classes: int
  features: Sequence[int] = (16, 32)
  hidden: int = 128
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    for f in self.features:
      x = nn.relu(Conv(f, (5, 5), conv_impl=self.conv_impl)(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(self.num_classes)(x)
