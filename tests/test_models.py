"""Models: the im2col convolution equals XLA's; shapes; BatchNorm modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrmeta.models import MODELS, Conv, make_model


@pytest.mark.parametrize("kernel,strides,padding", [
    ((3, 3), (1, 1), "SAME"), ((5, 5), (1, 1), "SAME"),
    ((3, 3), (2, 2), "SAME"), ((1, 1), (2, 2), "SAME"),
    ((5, 5), (1, 1), "VALID")])
def test_im2col_conv_matches_xla(kernel, strides, padding):
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
  a = Conv(4, kernel, strides, padding, conv_impl="xla")
  b = Conv(4, kernel, strides, padding, conv_impl="im2col")
  v = a.init(jax.random.key(1), x)
  ya, yb = a.apply(v, x), b.apply(v, x)
  assert ya.shape == yb.shape
  np.testing.assert_allclose(ya, yb, rtol=1e-5, atol=1e-5)
  ga = jax.grad(lambda v: (a.apply(v, x) ** 2).sum())(v)
  gb = jax.grad(lambda v: (b.apply(v, x) ** 2).sum())(v)
  jax.tree.map(lambda u, w: np.testing.assert_allclose(u, w, rtol=1e-4,
                                                      atol=1e-4), ga, gb)


@pytest.mark.parametrize("name", [
    pytest.param(m, marks=pytest.mark.slow) if m in ("resnet8", "resnet18")
    else m for m in MODELS])
def test_models_output_logits(name):
  shape = (2, 32, 32, 3) if name.startswith("resnet") or name == "cnn3" else (
      2, 28, 28, 1)
  m = make_model(name, 10)
  x = jnp.ones(shape)
  v = m.init(jax.random.key(0), x, train=False)
  assert m.apply(v, x, train=False).shape == (2, 10)


@pytest.mark.slow
def test_batchnorm_updates_stats_only_in_training():
  m = make_model("resnet8", 10)
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3)) + 3.0
  v = m.init(jax.random.key(1), x, train=False)
  _, new = m.apply(v, x, train=True, mutable=["batch_stats"])
  before = jax.tree.leaves(v["batch_stats"])
  after = jax.tree.leaves(new["batch_stats"])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))
  # Eval mode uses running averages: output independent of batch makeup.
  y1 = m.apply(v, x, train=False)
  y2 = m.apply(v, x[:2], train=False)
  np.testing.assert_allclose(y1[:2], y2, rtol=1e-5, atol=1e-5)


def test_unknown_model_and_bad_depth():
  with pytest.raises(ValueError, match="unknown model"):
    make_model("vgg", 10)
  from lrmeta.models import CifarResNet
  with pytest.raises(ValueError, match="6n\\+2"):
    CifarResNet(10, depth=10)
