"""Inner problems: what a meta-gradient estimator unrolls.

An estimator needs four pure functions of the controller's meta-parameters
``theta`` (any pytree): start an inner run, advance it by ``n`` steps, score
it (the meta-objective), and read its step counter. :class:`TaskProblem`
provides them for any :class:`lrmeta.tasks.Task` and any controller given as
``make_optimizer: theta -> optax transformation``, so MLR-SNet, hypergradient
and RL controllers are meta-trained by the same code. Tests supply small
closed-form problems with the same four functions.

The unroll is rematerialised in blocks (``jax.checkpoint`` around each block
of a two-level ``lax.scan``): reverse-mode memory then holds one inner state
per block plus the activations of one block, about ``2 sqrt(T)`` states
instead of ``T`` for ``T`` steps, for the price of one extra forward pass.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import optax

from lrmeta.tasks.base import Task
from lrmeta.train.state import (SignalsFn, TrainState, init_state,
                                loss_signal, train_step)

Theta = Any
MakeOptimizer = Callable[[Theta], optax.GradientTransformation]


class InnerProblem(Protocol):
  """The interface every estimator unrolls (all methods pure and traceable)."""

  def init(self, theta: Theta, key: jax.Array) -> Any:
    """A fresh inner run (e.g. a :class:`TrainState`)."""

  def unroll(self, theta: Theta, inner: Any, num_steps: int
             ) -> tuple[Any, dict[str, jax.Array]]:
    """Advances ``inner`` by ``num_steps``; metrics stacked per step."""

  def meta_loss(self, theta: Theta, inner: Any) -> jax.Array:
    """The scalar meta-objective evaluated at ``inner``."""

  def step_of(self, inner: Any) -> jax.Array:
    """The inner step counter (int32 scalar)."""


def remat_block_size(num_steps: int) -> int:
  """Steps per rematerialised block: about ``sqrt(num_steps)``."""
  return max(1, int(math.isqrt(max(num_steps, 1))))


def checkpointed_scan(step: Callable[[Any], tuple[Any, Any]], carry: Any,
                      num_steps: int, block: int | None = None
                      ) -> tuple[Any, Any]:
  """``num_steps`` applications of ``step`` with block rematerialisation.

  Equivalent to ``lax.scan(lambda c, _: step(c), carry, None, num_steps)``
  (same values, same gradients), but under reverse-mode differentiation only
  the carry at each block boundary is stored; a block's activations are
  recomputed when its cotangent is needed.

  Args:
    step: ``carry -> (carry, per-step output)``.
    carry: initial carry.
    num_steps: total steps.
    block: steps per block; ``None`` picks :func:`remat_block_size`.

  Returns:
    ``(carry, outputs)`` with outputs stacked along a leading ``num_steps``
    axis.
  """
  block = remat_block_size(num_steps) if block is None else block
  nb, rem = divmod(num_steps, block)

  def body(c, _):
    return step(c)

  outs = []
  if nb:
    @jax.checkpoint
    def run_block(c):
      return jax.lax.scan(body, c, None, length=block)

    carry, out = jax.lax.scan(lambda c, _: run_block(c), carry, None,
                              length=nb)
    outs.append(jax.tree.map(
        lambda x: x.reshape((nb * block,) + x.shape[2:]), out))
  if rem:
    carry, out = jax.lax.scan(body, carry, None, length=rem)
    outs.append(out)
  if len(outs) == 1:
    return carry, outs[0]
  return carry, jax.tree.map(lambda *x: jnp.concatenate(x), *outs)


@dataclasses.dataclass(frozen=True)
class TaskProblem:
  """Training a :class:`Task` with the controller ``make_optimizer(theta)``.

  The meta-objective is the loss of the current parameters on a minibatch of
  the held-out validation split (MLR-SNet's "meta set" of 1,000 training
  images is the validation split of ``load_dataset(..., num_val=1000)``).

  Attributes:
    task: the inner task.
    make_optimizer: ``theta -> optax transformation`` (the controller chain).
    meta_batch_size: validation examples per meta-loss evaluation
      (``None``: the task's batch size).
    signals: extra arguments handed to the optimizer at each step.
    remat_block: steps per rematerialised block (``None``: ~sqrt of the
      unroll length; ``0``: no rematerialisation).
    meta_train_mode: score the meta-loss with the model in training mode
      (batch statistics), as the MLR-SNet authors' meta-training does
      (``meta_train.py`` line 93: ``meta_model.train()``); ``False``: eval
      mode.
  """

  task: Task
  make_optimizer: MakeOptimizer
  meta_batch_size: int | None = None
  signals: SignalsFn = loss_signal
  remat_block: int | None = None
  meta_train_mode: bool = False

  def init(self, theta: Theta, key: jax.Array) -> TrainState:
    return init_state(self.task, self.make_optimizer(theta), key)

  def unroll(self, theta: Theta, inner: TrainState, num_steps: int
             ) -> tuple[TrainState, dict[str, jax.Array]]:
    opt = self.make_optimizer(theta)

    def step(s):
      return train_step(self.task, opt, s, self.signals)

    if self.remat_block == 0:
      return jax.lax.scan(lambda c, _: step(c), inner, None, length=num_steps)
    return checkpointed_scan(step, inner, num_steps, self.remat_block)

  def meta_loss(self, theta: Theta, inner: TrainState) -> jax.Array:
    del theta
    # Tag 2: distinct from the train batch (fold_in(key, step)) and from the
    # validation signal (tag 1) of lrmeta.train.with_validation_loss.
    key = jax.random.fold_in(jax.random.fold_in(inner.key, inner.step), 2)
    batch = self.task.val_batch(key, self.meta_batch_size)
    return self.task.loss(inner.params, inner.model_state, batch,
                          train=self.meta_train_mode)[0]

  def step_of(self, inner: TrainState) -> jax.Array:
    return inner.step
