"""Optax optimizers driven by hand-designed rates, recording the applied rate.

:func:`sgd` runs SGD under any schedule of this package; :func:`plateau_sgd`
(with its scaling transformation :func:`scale_by_plateau_lr`) lowers the rate
when the loss stops improving. Both keep the rate they applied in their state,
where :func:`lrmeta.train.applied_learning_rate` reads it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


def sgd(schedule: optax.Schedule, momentum: float | None = 0.9,
        nesterov: bool = False) -> optax.GradientTransformation:
  """SGD with a scheduled rate, its applied rate recorded as ``learning_rate``.

  ``optax.inject_hyperparams(optax.sgd)`` evaluates the schedule at the step
  count and stores the value in its state, where
  :func:`lrmeta.train.applied_learning_rate` reads it.

  Args:
    schedule: ``step -> learning rate``.
    momentum: heavy-ball momentum, or None for plain SGD.
    nesterov: use Nesterov momentum.

  Returns:
    An ``optax.GradientTransformation``.
  """
  return optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))(
      learning_rate=schedule, momentum=momentum, nesterov=nesterov)


class PlateauState(NamedTuple):
  """State of :func:`plateau_sgd`'s scaling: optax's plateau state + rate."""

  plateau: Any  # optax.contrib.ReduceLROnPlateauState
  learning_rate: jax.Array
  count: jax.Array


def scale_by_plateau_lr(learning_rate: float, **plateau_kwargs
                        ) -> optax.GradientTransformationExtraArgs:
  """``-learning_rate * scale``, ``scale`` from optax's reduce-on-plateau.

  Wraps ``optax.contrib.reduce_on_plateau`` (which reads ``value=`` extra
  args) and exposes the applied rate ``learning_rate * scale`` in the state.

  Args:
    learning_rate: the rate before any reduction.
    **plateau_kwargs: passed to ``optax.contrib.reduce_on_plateau``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose update needs
    ``value=loss``.
  """
  inner = optax.contrib.reduce_on_plateau(**plateau_kwargs)
  lr0 = jnp.asarray(learning_rate, jnp.float32)

  def init_fn(params):
    return PlateauState(inner.init(params), lr0, jnp.zeros((), jnp.int32))

  def update_fn(updates, state, params=None, *, value=None, **extra):
    del extra
    if value is None:
      raise ValueError("reduce-on-plateau needs the loss as `value=`")
    updates, plateau = inner.update(updates, state.plateau, params,
                                    value=value)
    updates = jax.tree.map(lambda u: -lr0 * u, updates)
    lr = (lr0 * plateau.scale).astype(jnp.float32)
    return updates, PlateauState(plateau, lr, state.count + 1)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def plateau_sgd(learning_rate: float, momentum: float = 0.9, *,
                factor: float = 0.5, patience: int = 10, cooldown: int = 0,
                rtol: float = 1e-4, atol: float = 0.0,
                accumulation_size: int = 1, min_scale: float = 0.0
                ) -> optax.GradientTransformationExtraArgs:
  """SGD (momentum) whose rate drops by ``factor`` when the loss plateaus.

  The plateau logic is ``optax.contrib.reduce_on_plateau``; only the
  recording of the applied rate is added. Pass the loss as ``value=``.

  Args:
    learning_rate: the initial rate.
    momentum: decay of the gradient trace (``optax.trace``).
    factor, patience, cooldown, rtol, atol, accumulation_size, min_scale:
      ``optax.contrib.reduce_on_plateau``'s arguments.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  References:
    PyTorch ``ReduceLROnPlateau``; LRBench's ``ChangeLROnPlateau``.
  """
  return optax.chain(
      optax.trace(decay=momentum),
      scale_by_plateau_lr(learning_rate, factor=factor, patience=patience,
                          cooldown=cooldown, rtol=rtol, atol=atol,
                          accumulation_size=accumulation_size,
                          min_scale=min_scale))
