"""The learned-controller protocol and the store of saved controllers."""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import optax

from lrmeta.meta.checkpoint import load_controller, save_controller
from lrmeta.train.state import SignalsFn


@runtime_checkable
class LearnedController(Protocol):
  """What every learned controller kind provides.

  ``config`` is the JSON-serialisable dict saved beside ``theta``; it holds
  ``"controller": name`` and whatever the kind needs to rebuild the
  transformation (base optimizer settings, network sizes, the budget it was
  trained for).
  """

  name: str

  def init(self, key: jax.Array, config: dict) -> Any:
    """Initial meta-parameters ``theta`` for ``config``."""

  def optimizer(self, theta: Any, config: dict, num_steps: int, *,
                learning_rate: float | None = None,
                num_classes: int | None = None
                ) -> optax.GradientTransformationExtraArgs:
    """The Optax transformation ``theta`` defines for a run of
    ``num_steps``; ``learning_rate`` overrides the saved base rate and
    ``num_classes`` describes the task it is applied to (both optional)."""

  def signals(self, config: dict, num_steps: int) -> SignalsFn:
    """The training-loop signal function the transformation reads (the
    ``value=`` loss, validation losses, ...)."""


class Frozen(NamedTuple):
  """A learned controller ready for a training loop."""

  optimizer: optax.GradientTransformationExtraArgs
  signals: SignalsFn


class SavedController(NamedTuple):
  """A controller read back from disk."""

  controller: LearnedController
  theta: Any
  config: dict

  @property
  def kind(self) -> str:
    return self.controller.name

  def frozen(self, num_steps: int, *, learning_rate: float | None = None,
             num_classes: int | None = None) -> Frozen:
    """This controller applied frozen to a run of ``num_steps`` (see
    :func:`frozen`)."""
    return Frozen(
        self.controller.optimizer(self.theta, self.config, num_steps,
                                  learning_rate=learning_rate,
                                  num_classes=num_classes),
        self.controller.signals(self.config, num_steps))


_REGISTRY: dict[str, LearnedController] = {}


def register(controller: LearnedController) -> LearnedController:
  """Adds a controller kind to the store (by its ``name``)."""
  if not isinstance(controller, LearnedController):
    raise TypeError(f"{controller!r} does not implement LearnedController")
  _REGISTRY[controller.name] = controller
  return controller


def kinds() -> tuple[str, ...]:
  """Names of the registered kinds."""
  return tuple(sorted(_REGISTRY))


def get(name: str) -> LearnedController:
  """The registered kind called ``name``."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown learned controller {name!r}; known: "
                     f"{list(kinds())}")
  return _REGISTRY[name]


def save(directory: str, theta: Any, config: dict) -> None:
  """Saves ``theta`` and ``config`` (which names a registered kind in
  ``config["controller"]``) to ``directory``."""
  get(config.get("controller"))
  save_controller(directory, theta, config)


def load(directory: str) -> SavedController:
  """Reads a controller saved by :func:`save`.

  Raises:
    FileNotFoundError: ``directory`` does not exist.
    ValueError: it is not a complete saved controller, or names an unknown
      kind.
  """
  path = os.path.abspath(directory)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"no saved controller at {directory}: the folder "
                            "does not exist")
  try:
    theta, config = load_controller(path)
  except Exception as e:  # orbax raises many types for a damaged folder
    raise ValueError(f"{directory} is not a complete saved controller "
                     f"({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                     ) from e
  return SavedController(get(config.get("controller")), theta, config)


def frozen(directory: str, num_steps: int, *,
           learning_rate: float | None = None,
           num_classes: int | None = None) -> Frozen:
  """A saved controller applied frozen (no further training) to a run of
  ``num_steps``: its optimizer and the signals that optimizer reads."""
  return load(directory).frozen(num_steps, learning_rate=learning_rate,
                                num_classes=num_classes)
