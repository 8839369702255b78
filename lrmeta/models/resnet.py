"""CIFAR-style ResNets with BatchNorm (He et al. 2016).

``ResNet18`` is the CIFAR variant (3x3 stem, no max-pool, stages of 64-512
filters). ``CifarResNet`` is the 6n+2 family of the original paper (ResNet-20
for n=3, ResNet-8 for n=1) with 16-32-64 filters, small enough for CPU.
BatchNorm uses batch statistics when ``train=True`` and the running averages
(``batch_stats`` collection) otherwise.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax

from lrmeta.models.layers import Conv


class BasicBlock(nn.Module):
  features: int
  strides: int = 1
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = functools.partial(Conv, use_bias=False, conv_impl=self.conv_impl)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5)
    s = (self.strides, self.strides)
    y = nn.relu(norm()(conv(self.features, (3, 3), s)(x)))
    y = norm(scale_init=nn.initializers.zeros)(conv(self.features, (3, 3))(y))
    if x.shape != y.shape:
      x = norm()(conv(self.features, (1, 1), s)(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """Generic pre-pool ResNet built from :class:`BasicBlock` stages."""

  num_classes: int
  stage_sizes: Sequence[int]
  widths: Sequence[int]
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = Conv(self.widths[0], (3, 3), use_bias=False,
             conv_impl=self.conv_impl)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9,
                             epsilon=1e-5)(x))
    for i, (n, w) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(n):
        x = BasicBlock(w, 2 if (i > 0 and j == 0) else 1,
                       conv_impl=self.conv_impl)(x, train)
    x = x.mean(axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


def ResNet18(num_classes: int, conv_impl: str = "auto") -> ResNet:  # pylint: disable=invalid-name
  return ResNet(num_classes, (2, 2, 2, 2), (64, 128, 256, 512), conv_impl)


def CifarResNet(num_classes: int, depth: int = 20, width: int = 16,  # pylint: disable=invalid-name
                conv_impl: str = "auto") -> ResNet:
  if (depth - 2) % 6:
    raise ValueError(f"CIFAR ResNet depth must be 6n+2 (8, 14, 20, 32...), "
                     f"got {depth}")
  n = (depth - 2) // 6
  return ResNet(num_classes, (n, n, n), (width, 2 * width, 4 * width),
                conv_impl)
