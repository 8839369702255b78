"""The learned schedule (knots plus loss feedback) as a learned controller.

A saved learned-schedule config holds the base rate ``base_lr`` it was
trained with, the base optimizer (``optimizer``: ``"sgd"``, the default for
configs saved without the key, or ``"adam"``), the SGD settings
(``momentum``, ``weight_decay``; Adam runs at optax's defaults), the sizes of
``theta`` (``num_knots``, ``hidden``), the feedback bound ``bound``,
``use_feedback`` (False: the knot schedule alone), the EMA decays of the
loss features and ``trained_on``. Applied to a run of ``num_steps``, the
knots stretch over that budget (``T = num_steps``), so the schedule keeps
its shape at any length. A config with ``context`` True
(:mod:`lrmeta.controllers.context_schedule`, its ``window_fraction`` and
``context_bound``) conditions the schedule on the run's budget and its
loss over an observation window; ``theta`` then has a ``"context"`` entry,
zero when untrained. Configs saved without the key have no context.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from lrmeta.controllers.context_schedule import (WINDOW_FRACTION,
                                                 context_schedule_chain,
                                                 init_context_params)
from lrmeta.controllers.learned_schedule import (HIDDEN, LONG_DECAY,
                                                 NUM_KNOTS, SHORT_DECAY,
                                                 init_learned_schedule_params,
                                                 learned_schedule_adam,
                                                 learned_schedule_sgd)
from lrmeta.learned.base import register
from lrmeta.train.state import SignalsFn, loss_signal

NAME = "learned_schedule"
OPTIMIZERS = ("sgd", "adam")


def config(*, base_lr: float, momentum: float = 0.9,
           weight_decay: float = 0.0, num_knots: int = NUM_KNOTS,
           hidden: int = HIDDEN, bound: float = 1.0,
           use_feedback: bool = True, short_decay: float = SHORT_DECAY,
           long_decay: float = LONG_DECAY, trained_on: Any = None,
           optimizer: str = "sgd", context: bool = False,
           window_fraction: float = WINDOW_FRACTION,
           context_bound: float = 1.0, **info: Any) -> dict:
  """A saved-controller config; ``info`` is kept as is. The context keys
  are written only when ``context`` is True (so a config without context
  is the one saved before they existed)."""
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"learned schedule: optimizer must be one of "
                     f"{OPTIMIZERS}, got {optimizer!r}")
  if context and weight_decay:
    raise ValueError("learned schedule: context runs without weight decay, "
                     f"got weight_decay={weight_decay}")
  return {"controller": NAME, "base_lr": float(base_lr),
          "optimizer": optimizer,
          "momentum": float(momentum), "weight_decay": float(weight_decay),
          "num_knots": int(num_knots), "hidden": int(hidden),
          "bound": float(bound), "use_feedback": bool(use_feedback),
          "short_decay": float(short_decay), "long_decay": float(long_decay),
          "trained_on": trained_on,
          **({"context": True, "window_fraction": float(window_fraction),
              "context_bound": float(context_bound)} if context else {}),
          **info}


class LearnedSchedule:
  """The :class:`~lrmeta.learned.LearnedController` of the learned
  schedule."""

  name = NAME

  def init(self, key: jax.Array, config: dict) -> Any:  # pylint: disable=redefined-outer-name
    theta = init_learned_schedule_params(key, config["num_knots"],
                                         config["hidden"])
    if config.get("context", False):
      theta["context"] = init_context_params(config["num_knots"])
    return theta

  def optimizer(self, theta: Any, config: dict, num_steps: int, *,  # pylint: disable=redefined-outer-name
                learning_rate: float | None = None,
                num_classes: int | None = None
                ) -> optax.GradientTransformationExtraArgs:
    """``learned_schedule_sgd`` (``learned_schedule_adam`` for a config
    with ``optimizer="adam"``) over a budget of ``num_steps``; the base
    rate is ``learning_rate`` or the saved ``base_lr``. The features are
    scale-free, so ``num_classes`` is not needed."""
    del num_classes
    k = theta["knots"].shape[0]
    if k != config["num_knots"]:
      raise ValueError(f"theta has {k} knots, its config says "
                       f"{config['num_knots']}")
    lr = config["base_lr"] if learning_rate is None else learning_rate
    if config.get("context", False):
      return context_schedule_chain(
          theta, lr, num_steps, optimizer=config.get("optimizer", "sgd"),
          momentum=config["momentum"], bound=config["bound"],
          context_bound=config["context_bound"],
          window_fraction=config["window_fraction"],
          use_feedback=config["use_feedback"],
          short_decay=config.get("short_decay", SHORT_DECAY),
          long_decay=config.get("long_decay", LONG_DECAY))
    if config.get("optimizer", "sgd") == "adam":
      return learned_schedule_adam(
          theta, lr, num_steps, bound=config["bound"],
          use_feedback=config["use_feedback"],
          short_decay=config.get("short_decay", SHORT_DECAY),
          long_decay=config.get("long_decay", LONG_DECAY))
    return learned_schedule_sgd(
        theta, lr, num_steps, config["momentum"],
        weight_decay=config.get("weight_decay", 0.0), bound=config["bound"],
        use_feedback=config["use_feedback"],
        short_decay=config.get("short_decay", SHORT_DECAY),
        long_decay=config.get("long_decay", LONG_DECAY))

  def signals(self, config: dict, num_steps: int) -> SignalsFn:  # pylint: disable=redefined-outer-name
    """The minibatch loss as ``value=`` (also passed without feedback: the
    loss EMAs are then tracked but unused)."""
    del config, num_steps
    return loss_signal


CONTROLLER = register(LearnedSchedule())
