"""Training and scoring the instances of a task family.

Meta-training evaluates dozens of whole runs of a family's instances per
outer step. An instance is a shape with a run seed (a
:class:`lrmeta.tasks.protocol.Shape`: ``num_steps``, ``seed``, ``key()``,
``shape``, ``task()``), of the pooled family
(:class:`lrmeta.tasks.family.Instance`) or of any family a user brings;
its task is ``instance.task()``:

* :func:`train_group` trains a same-shape group with
  :func:`lrmeta.train.train_population` (states and history);
  :func:`final_val_losses` groups any instances by shape and runs each group
  as one cached jitted program (:func:`group_val_loss_fn`), the form an outer
  loop calls at every step without recompiling.
* :func:`reference_losses` and :func:`normalized_fitness` give the
  per-instance normalised fitness: the final loss over the fixed validation
  split divided by the loss of the same run (same initialisation, same
  minibatches) under the constant reference rate :func:`reference_optimizer`.

References:
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled
  Computation Graphs with Persistent Evolution Strategies", ICML 2021.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.tasks import family
from lrmeta.tasks.base import Task
from lrmeta.tasks.family import Instance, group_by_shape
from lrmeta.train import (History, TrainState, init_state, run_steps, train,
                          train_population)
from lrmeta.train.state import SignalsFn

MakeOptimizer = Callable[[Any], optax.GradientTransformation]

# The constant reference rule of the normalised fitness: SGD with heavy-ball
# momentum 0.9 at rate 0.05, the project's usual constant baseline: a rate at
# which every network of the family trains stably, so the ratio is finite.
REFERENCE_LR = 0.05
REFERENCE_MOMENTUM = 0.9


# -- training ------------------------------------------------------------------


def _check_group(instances: Sequence[Instance]) -> Instance:
  if not instances:
    raise ValueError("a group needs at least one instance")
  shape = instances[0].shape
  if any(inst.shape != shape for inst in instances):
    raise ValueError("a group's instances must share one shape; use "
                     "group_by_shape")
  return shape


def group_keys(instances: Sequence[Instance]) -> jax.Array:
  """``[K]`` run keys of ``instances``."""
  return jnp.stack([inst.key() for inst in instances])


def train_instance(instance: Instance,
                   optimizer: optax.GradientTransformation
                   ) -> tuple[TrainState, History]:
  """Trains one instance alone (scanned, one evaluation of the validation
  split at the end)."""
  return train(instance.task(), optimizer, instance.key(),
               instance.num_steps, eval_every=instance.num_steps,
               eval_splits=("val",), progress=False)


def train_group(instances: Sequence[Instance], make_optimizer: MakeOptimizer,
                hparams: Any = None) -> tuple[TrainState, History]:
  """Trains same-shape instances as one vmapped population.

  Args:
    instances: ``K`` instances of one shape.
    make_optimizer: ``hparams_i -> optax transformation`` (see
      :func:`lrmeta.train.train_population`).
    hparams: pytree with leading axis ``K`` (or ``None``).

  Returns:
    ``(final_states, history)`` with leading axis ``K``;
    ``history.final("val_loss")`` is each member's final validation loss.
  """
  shape = _check_group(instances)
  return train_population(shape.task(), make_optimizer, hparams,
                          group_keys(instances), shape.num_steps,
                          eval_every=shape.num_steps, eval_splits=("val",),
                          progress=False)


def final_val_losses(instances: Sequence[Instance],
                     make_optimizer: MakeOptimizer | None,
                     hparams: Sequence[Any] | None = None, *,
                     stacked: Any = None,
                     program: Callable[[Instance], tuple] | None = None
                     ) -> np.ndarray:
  """Final validation losses of any instances, one vmapped program per shape.

  Runs :func:`group_val_loss_fn` for each shape, so repeated calls with the
  same ``make_optimizer`` object reuse the compiled programs.

  Args:
    instances: instances of any shapes.
    make_optimizer: ``hparams_i -> optax transformation``.
    hparams: one pytree per instance (``None``: ``make_optimizer(None)``).
    stacked: instead of ``hparams``, one pytree whose leaves hold one row
      per instance (``[len(instances), ...]``).
    program: ``shape -> (scored shape, make_optimizer, signals)``: how the
      runs of one shape are built and scored (``None``: the shape itself,
      ``make_optimizer``, the minibatch loss), e.g. a budget-dependent
      controller scored after a truncation.

  Returns:
    ``float[len(instances)]`` in the order of ``instances``.
  """
  out = np.full((len(instances),), np.nan)
  for shape, idx in group_by_shape(instances).items():
    if stacked is not None:
      h = jax.tree.map(lambda x: jnp.asarray(x[idx]), stacked)
    else:
      h = None if hparams is None else jax.tree.map(
          lambda *x: jnp.stack(x), *[hparams[i] for i in idx])
    scored, make, signals = (program(shape) if program is not None
                             else (shape, make_optimizer, None))
    losses = group_val_loss_fn(scored, make, signals)(
        h, group_keys([instances[i] for i in idx]))
    out[idx] = np.asarray(losses)
  return out


def val_loss_after_training(task: Task, optimizer: optax.GradientTransformation,
                            key: jax.Array, num_steps: int, *,
                            signals: SignalsFn | None = None) -> jax.Array:
  """One whole run's final loss over the validation split (pure);
  ``signals`` (default: the minibatch loss) feed the transformation's extra
  args."""
  state = init_state(task, optimizer, key)
  state, _ = run_steps(task, optimizer, state, num_steps,
                       **({} if signals is None else {"signals": signals}))
  return task.evaluate(state.params, state.model_state, "val")["loss"]


@functools.lru_cache(maxsize=64)
def group_val_loss_fn(shape: Instance, make_optimizer: MakeOptimizer,
                      signals: SignalsFn | None = None
                      ) -> Callable[[Any, jax.Array], jax.Array]:
  """A jitted ``(hparams [K], keys [K]) -> final val losses [K]`` for a shape.

  Initialisation, ``num_steps`` training steps and the evaluation of the
  validation split run as one vmapped program. The compiled function is
  cached per ``(shape, make_optimizer)``: pass the same ``make_optimizer``
  object at every outer step to reuse it.

  Args:
    shape: the group's :attr:`Instance.shape`.
    make_optimizer: ``hparams_i -> optax transformation``.
    signals: the training loop's signal function (``None``: the minibatch
      loss), e.g. a learned controller's ``signals(config, num_steps)``.

  Returns:
    The jitted function.
  """
  task = shape.task()

  def member(h, key):
    return val_loss_after_training(task, make_optimizer(h), key,
                                   shape.num_steps, signals=signals)
  return jax.jit(jax.vmap(member))


# -- normalised fitness --------------------------------------------------------


def reference_optimizer(hparams: Any = None) -> optax.GradientTransformation:
  """The constant reference rule: ``sgd(REFERENCE_LR, momentum=0.9)``.

  Takes (and ignores) ``hparams`` so it can serve as a ``make_optimizer``.
  """
  del hparams
  return optax.sgd(REFERENCE_LR, momentum=REFERENCE_MOMENTUM)


_REFERENCE_LOSS: dict[Instance, float] = {}


def reference_losses(instances: Sequence[Instance]) -> np.ndarray:
  """Final validation loss of each instance under :func:`reference_optimizer`.

  Each instance's loss is computed once per process (the missing ones as
  one population per shape) and cached; the reference run shares the
  instance's key, hence its initialisation and minibatch order.

  Returns:
    ``float[len(instances)]`` in the order of ``instances``.
  """
  missing = [inst for inst in dict.fromkeys(instances)
             if inst not in _REFERENCE_LOSS]
  if missing:
    losses = final_val_losses(missing, reference_optimizer)
    _REFERENCE_LOSS.update(zip(missing, losses.tolist()))
  return np.asarray([_REFERENCE_LOSS[inst] for inst in instances])


def reference_loss(instance: Instance) -> float:
  """:func:`reference_losses` of one instance."""
  return float(reference_losses([instance])[0])


def normalized_fitness(instances: Sequence[Instance], losses: Any
                       ) -> np.ndarray:
  """Final validation losses divided by the reference losses (lower is
  better; the reference rate itself scores 1).

  The ratio removes the scale differences between instances (grayscale
  CIFAR-10 runs end near loss 2, clean Fashion-MNIST ones near 0.5) so
  instances of different difficulty weigh alike in an outer-loop average;
  the reference run shares initialisation and minibatches, so much of the
  run-to-run noise cancels. A diverged run gives a non-finite fitness,
  which estimators leave out.

  Args:
    instances: the instances the losses belong to.
    losses: ``[len(instances)]`` final validation losses.

  Returns:
    ``float[len(instances)]``.
  """
  losses = np.asarray(losses, np.float64)
  if losses.shape != (len(instances),):
    raise ValueError(f"expected {len(instances)} losses, got shape "
                     f"{losses.shape}")
  return losses / reference_losses(instances)


def clear_caches() -> None:
  """Drops the cached datasets, programs and reference losses."""
  family.pooled_dataset.cache_clear()
  group_val_loss_fn.cache_clear()
  _REFERENCE_LOSS.clear()


__all__ = ["REFERENCE_LR", "REFERENCE_MOMENTUM", "clear_caches",
           "final_val_losses", "group_keys", "group_val_loss_fn",
           "normalized_fitness", "reference_loss", "reference_losses",
           "reference_optimizer", "train_group", "train_instance",
           "val_loss_after_training"]
