"""Optimizer chains from configuration."""

from __future__ import annotations

import optax

BASE_OPTIMIZERS = ("sgd", "adam")
SIMPLE_SCHEDULES = ("constant", "cosine", "step")


def simple_schedule(name: str, lr: float, num_steps: int) -> optax.Schedule:
  """The classic baselines: constant, cosine decay, step decay (x0.1 at 50 %
  and 75 % of the budget, the usual ImageNet/CIFAR milestones)."""
  if name == "constant":
    return optax.constant_schedule(lr)
  if name == "cosine":
    return optax.cosine_decay_schedule(lr, num_steps)
  if name == "step":
    return optax.piecewise_constant_schedule(
        lr, {int(0.5 * num_steps): 0.1, int(0.75 * num_steps): 0.1})
  raise ValueError(f"unknown schedule {name!r}; choose one of "
                   f"{SIMPLE_SCHEDULES}")


def base_optimizer(name: str, learning_rate, *, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """SGD (with momentum) or Adam, with optional decoupled L2 weight decay,
  wrapped in ``inject_hyperparams`` so the applied rate is recorded."""
  if name not in BASE_OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r}; choose one of "
                     f"{BASE_OPTIMIZERS}")

  def make(learning_rate):
    core = (optax.sgd(learning_rate, momentum=momentum or None)
            if name == "sgd" else optax.adam(learning_rate))
    if weight_decay:
      return optax.chain(optax.add_decayed_weights(weight_decay), core)
    return core

  return optax.inject_hyperparams(make)(learning_rate=learning_rate)
