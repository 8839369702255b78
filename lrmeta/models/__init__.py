"""Flax models: MLP, LeNet-5, CNN3, the small 2-conv CNN, CIFAR ResNets."""

from lrmeta.models.cnn import CNN3, MLP, LeNet5, SmallCNN
from lrmeta.models.layers import Conv, resolve_conv_impl
from lrmeta.models.resnet import CifarResNet, ResNet, ResNet18

_REGISTRY = {
    "mlp": lambda c, **kw: MLP(c, **kw),
    "lenet5": lambda c, **kw: LeNet5(c, **kw),
    "cnn3": lambda c, **kw: CNN3(c, **kw),
    "small_cnn": lambda c, **kw: SmallCNN(c, **kw),
    "resnet8": lambda c, **kw: CifarResNet(c, depth=8, **kw),
    "resnet20": lambda c, **kw: CifarResNet(c, depth=20, **kw),
    "resnet18": lambda c, **kw: ResNet18(c, **kw),
}
MODELS = tuple(_REGISTRY)


def make_model(name: str, num_classes: int, **kwargs):
  """Builds a model by name (one of :data:`MODELS`)."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")
  return _REGISTRY[name](num_classes, **kwargs)


__all__ = ["CNN3", "MLP", "LeNet5", "SmallCNN", "CifarResNet", "ResNet",
           "ResNet18", "Conv", "resolve_conv_impl", "make_model", "MODELS"]
