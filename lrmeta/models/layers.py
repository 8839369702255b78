"""Layers whose lowering is chosen per backend.

On XLA:CPU a convolution inside a ``lax.scan``/``while`` body runs many times
slower than the same convolution in a top-level jitted step (public JAX issue
12868). Measured here for a 2-conv CNN at batch 128: 168 ms/step plain jitted
vs 1896 ms/step inside ``scan``, and vmapping the convolution over a population
lowers it to a grouped convolution that is slow as well. :class:`Conv` therefore
offers an ``im2col`` lowering built from shifted slices and one matmul: it runs
at full speed inside ``scan`` (138 ms/step on the same CNN) and under ``vmap``
it becomes a batched matmul. ``conv_impl="auto"`` picks ``im2col`` on CPU and
XLA's native convolution on GPU/TPU, where native convolutions are fastest.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

CONV_IMPLS = ("auto", "xla", "im2col")


def resolve_conv_impl(conv_impl: str) -> str:
  if conv_impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
  if conv_impl == "auto":
    return "im2col" if jax.default_backend() == "cpu" else "xla"
  return conv_impl


class Conv(nn.Module):
  """2-D convolution (NHWC, HWIO kernel) with a selectable lowering.

  Both lowerings share the parameter layout of ``flax.linen.Conv`` (``kernel``
  of shape ``[kh, kw, cin, cout]`` and ``bias``), so parameters are
  interchangeable and the two compute the same function.
  """

  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  padding: str = "SAME"
  use_bias: bool = True
  conv_impl: str = "auto"
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = self.kernel_size
    cin = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init,
                        (kh, kw, cin, self.features))
    impl = resolve_conv_impl(self.conv_impl)
    if impl == "xla":
      y = jax.lax.conv_general_dilated(
          x, kernel.astype(x.dtype), self.strides, self.padding,
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    else:
      y = _im2col_conv(x, kernel, self.strides, self.padding)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def _im2col_conv(x, kernel, strides, padding):
  kh, kw, cin, cout = kernel.shape
  sh, sw = strides
  n, h, w, _ = x.shape
  if padding == "SAME":
    out_h, out_w = -(-h // sh), -(-w // sw)
    pad_h = max((out_h - 1) * sh + kh - h, 0)
    pad_w = max((out_w - 1) * sw + kw - w, 0)
    x = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                    (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
  elif padding == "VALID":
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
  else:
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
  cols = [
      x[:, i:i + (out_h - 1) * sh + 1:sh, j:j + (out_w - 1) * sw + 1:sw, :]
      for i in range(kh) for j in range(kw)
  ]
  patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
  return patches @ kernel.reshape(kh * kw * cin, cout).astype(x.dtype)
