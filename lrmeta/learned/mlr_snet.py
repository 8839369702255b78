"""MLR-SNet as a learned controller: config, rebuild, snapshots.

A saved MLR-SNet config holds the SGD settings of meta-training (momentum,
weight decay), the LSTM's hidden size, the number of classes of the
meta-training task (for the rate bound ``gamma``), a fixed ``gamma`` or
``None``, and ``switch_fractions``: when non-empty, ``theta`` holds
snapshots ``{"s0": ..., "s1": ..., ...}`` that are switched at those
fractions of the budget (the paper's meta-test protocol).

References:
  Shu, Zhu, Zhao, Meng, Xu, "MLR-SNet: Transferable LR Schedules for
  Heterogeneous Tasks", IEEE TPAMI 2022 (arXiv:2007.14546).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import optax

from lrmeta.controllers.mlr_snet import init_mlr_snet_params, mlr_snet_sgd
from lrmeta.learned.base import register
from lrmeta.train.state import SignalsFn, loss_signal

NAME = "mlr_snet"


def config(*, hidden: int, num_classes: int, gamma: float | None,
           momentum: float, weight_decay: float,
           switch_fractions: Sequence[float] = (), **info: Any) -> dict:
  """A saved-controller config; ``info`` (e.g. ``trained_on``) is kept as
  is."""
  return {"controller": NAME, "hidden": int(hidden),
          "num_classes": int(num_classes),
          "gamma": float(gamma) if gamma else None,
          "momentum": float(momentum), "weight_decay": float(weight_decay),
          "switch_fractions": [float(f) for f in switch_fractions], **info}


def switch_steps(fractions: Sequence[float], num_steps: int
                 ) -> tuple[int, ...]:
  """The steps at which snapshots switch for a run of ``num_steps``."""
  steps = tuple(max(1, int(f * num_steps)) for f in fractions)
  if steps and len(set(steps)) < len(steps):
    raise ValueError(f"{num_steps} steps are too few to switch snapshots at "
                     f"{list(fractions)}")
  return steps


def snapshots(theta: Any) -> list[Any]:
  """The snapshot list of a saved ``{"s0": ..., "s1": ...}`` theta."""
  return [theta[f"s{i}"] for i in range(len(theta))]


class MLRSNet:
  """The :class:`~lrmeta.learned.LearnedController` of MLR-SNet."""

  name = NAME

  def init(self, key: jax.Array, config: dict) -> Any:  # pylint: disable=redefined-outer-name
    return init_mlr_snet_params(key, config["hidden"])

  def optimizer(self, theta: Any, config: dict, num_steps: int, *,  # pylint: disable=redefined-outer-name
                learning_rate: float | None = None,
                num_classes: int | None = None
                ) -> optax.GradientTransformationExtraArgs:
    """``mlr_snet_sgd`` from a saved config.

    ``theta`` is one parameter set, a list of snapshots, or the saved
    ``{"s0": ...}`` form; snapshots switch at ``config["switch_fractions"]``
    of ``num_steps``. The LSTM sets the rate itself, so ``learning_rate`` is
    ignored; ``num_classes`` (default: the meta-training task's) enters the
    rate bound ``gamma``.
    """
    del learning_rate
    switch = switch_steps(config.get("switch_fractions") or [], num_steps)
    if switch:
      theta = snapshots(theta) if isinstance(theta, dict) else list(theta)
    return mlr_snet_sgd(
        theta, config["momentum"], weight_decay=config["weight_decay"],
        num_classes=num_classes or config["num_classes"],
        gamma=config.get("gamma"), switch_steps=switch)

  def signals(self, config: dict, num_steps: int) -> SignalsFn:  # pylint: disable=redefined-outer-name
    del config, num_steps
    return loss_signal


CONTROLLER = register(MLRSNet())
