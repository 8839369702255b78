"""Training state, one inner step, and the learning rate a chain applied."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.tasks.base import Task, accuracy

# A function that returns the extra keyword arguments handed to the optimizer
# at each step: (task, state, batch, loss, logits) -> dict. The default passes
# ``value=loss``, the convention of ``optax.contrib.reduce_on_plateau``.
SignalsFn = Callable[..., dict]


class TrainState(NamedTuple):
  """Everything an inner training run carries from step to step."""

  step: jax.Array  # int32 scalar
  params: optax.Params
  model_state: Any
  opt_state: optax.OptState
  key: jax.Array  # per-run key; step keys are fold_in(key, step)


def as_extra_args(optimizer: optax.GradientTransformation
                  ) -> optax.GradientTransformationExtraArgs:
  """Lets any optax transformation receive (and ignore) extra arguments."""
  return optax.with_extra_args_support(optimizer)


def init_state(task: Task, optimizer: optax.GradientTransformation,
               key: jax.Array) -> TrainState:
  """Initialises model and optimizer; ``key`` seeds both init and batches."""
  k_init, k_run = jax.random.split(key)
  params, model_state = task.init(k_init)
  opt_state = as_extra_args(optimizer).init(params)
  return TrainState(jnp.zeros((), jnp.int32), params, model_state, opt_state,
                    k_run)


def loss_signal(task, state, batch, loss, logits) -> dict:
  del task, state, batch, logits
  return {"value": loss}


def with_validation_loss(every: int, batch_size: int | None = None
                         ) -> SignalsFn:
  """Signals ``value=`` train loss and ``val_value=`` a validation-batch loss.

  The validation loss is computed every ``every`` steps on a fresh validation
  minibatch; on the other steps ``val_value`` is NaN, meaning "no new
  measurement". Controllers that read it (RL policies, validation-driven
  rules) get it as the ``val_value`` extra arg and hold the last finite one.
  """
  if every <= 0:
    raise ValueError(f"validation signal period must be positive, got {every}")

  def signals(task, state, batch, loss, logits):
    del batch, logits
    def compute(_):
      key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), 1)
      vb = task.val_batch(key, batch_size)
      return task.loss(state.params, state.model_state, vb, train=False)[0]
    return {"value": loss, "val_value": jax.lax.cond(
        state.step % every == 0, compute, lambda _: jnp.nan, None)}
  return signals


def applied_learning_rate(opt_state: optax.OptState) -> jax.Array:
  """The learning rate the chain applied at its last update.

  Read from every state entry named ``learning_rate``: the hyperparameters of
  ``optax.inject_hyperparams`` and the states of all lrmeta controllers. With
  several (e.g. an injected base rate times a controller's multiplier) the
  product is returned; with none, NaN (wrap the base optimizer in
  ``optax.inject_hyperparams`` to have it recorded).
  """
  found = [
      (path, v) for path, v in optax.tree_utils.tree_get_all_with_path(
          opt_state, "learning_rate")
      # inject_hyperparams also keeps a schedule *state* under this name
      # (a NamedTuple counter); only array values are rates.
      if isinstance(v, (jax.Array, np.ndarray, float))]
  if not found:
    return jnp.asarray(jnp.nan, jnp.float32)
  lr = jnp.ones((), jnp.float32)
  for _, value in found:
    lr = lr * jnp.asarray(value, jnp.float32).mean()
  return lr


def train_step(task: Task, optimizer: optax.GradientTransformation,
               state: TrainState, signals: SignalsFn = loss_signal
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD-style step on a fresh minibatch. Pure; returns (state, metrics)."""
  opt = as_extra_args(optimizer)
  batch = task.train_batch(jax.random.fold_in(state.key, state.step))

  def loss_fn(params):
    return task.loss(params, state.model_state, batch, train=True)

  (loss, (model_state, logits)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  extra = signals(task, state, batch, loss, logits)
  updates, opt_state = opt.update(grads, state.opt_state, state.params,
                                  **extra)
  params = optax.apply_updates(state.params, updates)
  metrics = {
      "train_loss": loss,
      "train_acc": accuracy(logits, batch.label),
      "grad_norm": optax.tree.norm(grads),
      "update_norm": optax.tree.norm(updates),
      "lr": applied_learning_rate(opt_state),
  }
  return TrainState(state.step + 1, params, model_state, opt_state,
                    state.key), metrics


def run_steps(task: Task, optimizer: optax.GradientTransformation,
              state: TrainState, num_steps: int, *,
              signals: SignalsFn = loss_signal, unroll: int | bool = 1
              ) -> tuple[TrainState, dict[str, jax.Array]]:
  """``num_steps`` inner steps as one ``lax.scan``; metrics stacked per step.

  Pure and differentiable: the meta layer differentiates through it.
  """
  def body(s, _):
    return train_step(task, optimizer, s, signals)
  return jax.lax.scan(body, state, None, length=num_steps, unroll=unroll)
