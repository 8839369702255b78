"""Hypergradient descent with meta-learned rates, as a learned controller.

HD (Baydin et al., ICLR 2018) adapts the learning rate online by the
hypergradient, but has two rates of its own: the initial learning rate and
the hypergradient rate ``beta``. Here they are the meta-parameters,

    theta = {"log_lr": log initial rate, "log_hyper_lr": log beta},

stored in log units (so a perturbation or a gradient step scales a rate),
and meta-trained like any other controller (e.g. by whole-run ES on the
task family). A saved config holds the base SGD's ``momentum`` and HD's
``rule``.

References:
  Baydin, Cornish, Martinez Rubio, Schmidt, Wood, "Online Learning Rate
  Adaptation with Hypergradient Descent", ICLR 2018 (arXiv:1703.04782).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.controllers.hypergradient import (DEFAULT_HYPER_LR_SGD,
                                              DEFAULT_INITIAL_LR, hd_sgd)
from lrmeta.learned.base import register
from lrmeta.train.state import SignalsFn, loss_signal

NAME = "hypergradient"


def config(*, momentum: float = 0.9, rule: str = "additive",
           **info: Any) -> dict:
  """A saved-controller config; ``info`` (e.g. ``trained_on``) is kept."""
  return {"controller": NAME, "momentum": float(momentum), "rule": rule,
          **info}


def theta_of(learning_rate: float, hyper_lr: float) -> dict:
  """The meta-parameters of HD with these two rates."""
  return {"log_lr": jnp.asarray(np.log(learning_rate), jnp.float32),
          "log_hyper_lr": jnp.asarray(np.log(hyper_lr), jnp.float32)}


def rates(theta: Any) -> tuple[float, float]:
  """``(initial rate, hypergradient rate)`` of ``theta``."""
  return (float(np.exp(theta["log_lr"])),
          float(np.exp(theta["log_hyper_lr"])))


class Hypergradient:
  """The :class:`~lrmeta.learned.LearnedController` of HD's two rates."""

  name = NAME

  def init(self, key: jax.Array, config: dict) -> Any:  # pylint: disable=redefined-outer-name
    """HD's defaults (initial rate 1e-3, hypergradient rate 1e-3)."""
    del key, config
    return theta_of(DEFAULT_INITIAL_LR, DEFAULT_HYPER_LR_SGD)

  def optimizer(self, theta: Any, config: dict, num_steps: int, *,  # pylint: disable=redefined-outer-name
                learning_rate: float | None = None,
                num_classes: int | None = None
                ) -> optax.GradientTransformationExtraArgs:
    """``hd_sgd`` at ``exp(theta)``; ``learning_rate`` replaces the learned
    initial rate when given. The budget and the task do not enter HD."""
    del num_steps, num_classes
    lr0 = (jnp.exp(theta["log_lr"]) if learning_rate is None
           else learning_rate)
    return hd_sgd(lr0, jnp.exp(theta["log_hyper_lr"]),
                  momentum=config["momentum"] or None, rule=config["rule"])

  def signals(self, config: dict, num_steps: int) -> SignalsFn:  # pylint: disable=redefined-outer-name
    del config, num_steps
    return loss_signal


CONTROLLER = register(Hypergradient())
