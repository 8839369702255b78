"""Training state, one inner step, and the learning rate a chain applied."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.tasks.base import Task
from lrmeta.tasks.protocol import batch_metrics

# A function that returns the extra keyword arguments handed to the optimizer
# at each step: (task, state, batch, loss, aux) -> dict, where aux is the
# auxiliary output of ``task.loss`` (a classification task's logits). The
# default passes ``value=loss``, the convention of
# ``optax.contrib.reduce_on_plateau``.
SignalsFn = Callable[..., dict]


def history_key(prefix: str, name: str) -> str:
  """The history name of metric ``name`` of a split or of the training
  minibatches: ``"{prefix}_acc"`` for ``"accuracy"`` (the name results
  folders have always used), else ``"{prefix}_{name}"``."""
  return f"{prefix}_{'acc' if name == 'accuracy' else name}"


class TrainState(NamedTuple):
  """Everything an inner training run carries from step to step."""

  step: jax.Array  # int32 scalar
  params: optax.Params
  model_state: Any
  opt_state: optax.OptState
  key: jax.Array  # per-run key; step keys are fold_in(key, step)


def _extra_keywords(update: Callable) -> frozenset[str] | None:
  """Names of the extra keyword arguments ``update`` accepts; None for all.

  The first three positional parameters (updates, state, params) are not
  extra arguments. A signature that cannot be read counts as accepting none.
  """
  try:
    sig = inspect.signature(update)
  except (TypeError, ValueError):
    return frozenset()
  names, positional = [], 0
  for p in sig.parameters.values():
    if p.kind is inspect.Parameter.VAR_KEYWORD:
      return None
    if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                  inspect.Parameter.POSITIONAL_OR_KEYWORD) and positional < 3:
      positional += 1
    elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    inspect.Parameter.KEYWORD_ONLY):
      names.append(p.name)
  return frozenset(names)


def as_extra_args(optimizer: Any) -> optax.GradientTransformationExtraArgs:
  """The optimizer as a transformation that receives extra arguments.

  Extra arguments (``value=`` loss and the other signals) reach every
  transformation whose ``update`` accepts them:

  * an ``optax.GradientTransformationExtraArgs`` (lrmeta controllers,
    ``optax.chain``, ``optax.apply_if_finite``, ``optax.inject_hyperparams``)
    is returned unchanged;
  * any other object with ``init``/``update`` whose ``update`` takes
    ``**kwargs`` forwards all of them (``optax.MultiSteps`` and its
    ``gradient_transformation()``, which pass them on to the wrapped
    optimizer);
  * an ``update`` with named keyword parameters receives those it names;
  * only an ``update`` that takes none is wrapped to drop them.

  ``optax.chain`` drops the extra arguments of a member that is not a
  ``GradientTransformationExtraArgs``; to put ``optax.MultiSteps`` inside a
  chain, pass ``as_extra_args(optax.MultiSteps(...))``.
  """
  if isinstance(optimizer, optax.GradientTransformationExtraArgs):
    return optimizer
  accepted = _extra_keywords(optimizer.update)
  if accepted is None:
    return optax.GradientTransformationExtraArgs(optimizer.init,
                                                 optimizer.update)
  if not accepted:
    return optax.with_extra_args_support(optimizer)

  def update(updates, state, params=None, **extra_args):
    kept = {k: v for k, v in extra_args.items() if k in accepted}
    return optimizer.update(updates, state, params, **kept)
  return optax.GradientTransformationExtraArgs(optimizer.init, update)


def init_state(task: Task, optimizer: optax.GradientTransformation,
               key: jax.Array) -> TrainState:
  """Initialises model and optimizer; ``key`` seeds both init and batches."""
  k_init, k_run = jax.random.split(key)
  params, model_state = task.init(k_init)
  opt_state = as_extra_args(optimizer).init(params)
  return TrainState(jnp.zeros((), jnp.int32), params, model_state, opt_state,
                    k_run)


def loss_signal(task, state, batch, loss, aux) -> dict:
  del task, state, batch, aux
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

  def signals(task, state, batch, loss, aux):
    del batch, aux
    def compute(_):
      key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), 1)
      vb = task.val_batch(key, batch_size)
      return task.loss(state.params, state.model_state, vb, train=False)[0]
    return {"value": loss, "val_value": jax.lax.cond(
        state.step % every == 0, compute, lambda _: jnp.nan, None)}
  return signals


def with_split_loss(at_steps, split: str = "train",
                    max_examples: int | None = None,
                    signals: SignalsFn = loss_signal) -> SignalsFn:
  """Adds ``gamma_loss=``: the eval-mode loss over a whole split.

  At the steps in ``at_steps`` (before that step's update) the loss over
  ``split`` (or its first ``max_examples`` examples) is computed in eval mode
  (:meth:`lrmeta.tasks.Task.evaluate`); on other steps ``gamma_loss`` is NaN.
  This is how the MLR-SNet paper's meta-test code sets the rate bound
  (``meta-test/meta_test.py`` lines 49-52, 74-75 and 86-87):
  ``mlr_snet(..., gamma_from="split")`` reads it at step 0 and at each
  snapshot switch.

  Under ``vmap`` over runs the step counter is batched and ``lax.cond``
  becomes a select, so the split is evaluated at every step: keep
  ``max_examples`` small there, or run unbatched.

  Args:
    at_steps: the steps at which to evaluate (static ints).
    split: ``"train"`` (the paper's), ``"val"`` or ``"test"``.
    max_examples: the number of examples of ``split`` to use (``None``:
      all).
    signals: the signals to extend (default ``value=`` the minibatch loss).
  """
  steps = tuple(int(s) for s in at_steps)
  if not steps:
    raise ValueError("with_split_loss: at_steps is empty")

  def out(task, state, batch, loss, logits):
    extra = dict(signals(task, state, batch, loss, logits))
    def compute(_):
      return task.evaluate(state.params, state.model_state, split,
                           max_examples)["loss"].astype(jnp.float32)
    hit = jnp.any(state.step == jnp.asarray(steps, jnp.int32))
    extra["gamma_loss"] = jax.lax.cond(
        hit, compute, lambda _: jnp.asarray(jnp.nan, jnp.float32), None)
    return extra
  return out


_RATE, _SCALE = "rate", "scale"
_INJECT_STATES = (optax.InjectHyperparamsState,
                  optax.InjectStatefulHyperparamsState)


def _is_number(x) -> bool:
  return isinstance(x, (jax.Array, np.ndarray, float, int, np.number))


def _rate_factors(node, inside_rate: bool) -> list[tuple[str, Any]]:
  """``(kind, value)`` of every readable rate factor, in tree order."""
  if isinstance(node, _INJECT_STATES):
    inner = _rate_factors(node.inner_state, inside_rate)
    lr = node.hyperparams.get("learning_rate")
    # A factory that records a rate of its own consumes the injected one
    # (inject_hyperparams(plateau_sgd), inject_hyperparams(rl_lr_sgd)).
    if lr is None or not _is_number(lr) or any(k == _RATE for k, _ in inner):
      return inner
    return [(_RATE, lr)] + inner
  if isinstance(node, optax.contrib.ReduceLROnPlateauState):
    return [] if inside_rate else [(_SCALE, node.scale)]
  fields = getattr(node, "_fields", None)
  if fields is not None:  # a NamedTuple state
    records = ("learning_rate" in fields
               and _is_number(getattr(node, "learning_rate")))
    out = []
    for name in fields:
      child = getattr(node, name)
      if name == "learning_rate" and records:
        out.append((_RATE, child))
      else:
        out += _rate_factors(child, inside_rate or records)
    return out
  if isinstance(node, Mapping):  # in jax.tree order: sorted keys
    return [f for k in sorted(node) for f in _rate_factors(node[k],
                                                           inside_rate)]
  if isinstance(node, (list, tuple)):
    return [f for child in node for f in _rate_factors(child, inside_rate)]
  return []


def applied_learning_rate(opt_state: optax.OptState) -> jax.Array:
  """The learning rate the chain applied at its last update.

  The product of every multiplicative rate factor that the optimizer state
  holds, in tree order:

  * a NamedTuple state field named ``learning_rate`` (all lrmeta
    controllers; a per-layer or per-element rate array counts as its
    unweighted mean over its entries);
  * the ``learning_rate`` hyperparameter of ``optax.inject_hyperparams``
    (the value in force at the last update, also when it is a schedule),
    unless the injected factory's own state records a ``learning_rate``:
    the injected value is then its input, already part of that record (as
    in ``inject_hyperparams(plateau_sgd)`` or
    ``inject_hyperparams(rl_lr_sgd)``);
  * the ``scale`` of ``optax.contrib.reduce_on_plateau``, unless it sits
    inside a state that records a ``learning_rate`` (such a transformation
    reports the rate it applied including the plateau factor, as
    :func:`lrmeta.schedules.scale_by_plateau_lr` does).

  Not covered, because the state does not hold them: constant factors
  (``optax.sgd(0.1)``'s rate, ``optax.scale``, a schedule passed to
  ``optax.sgd`` without ``inject_hyperparams``), clipping
  (``clip_by_global_norm`` rescales only when active), preconditioners
  (Adam's ``1 / (sqrt(v) + eps)`` is not a rate), momentum, weight decay,
  gradient accumulation (under ``optax.MultiSteps`` the rate of the wrapped
  optimizer is reported, also on the mini-steps that apply a zero update),
  skipped steps (``apply_if_finite``) and hyperparameters injected under
  another name. So for a plain SGD chain without momentum the result equals
  ``|update| / |gradient|``; for other chains it is the rate the controllers
  and schedules set, not the step size.

  Returns:
    A float32 scalar; NaN when no ``learning_rate`` is recorded anywhere (a
    plateau scale alone is a factor of an unknown base rate). Wrap the base
    optimizer in ``optax.inject_hyperparams`` to have it recorded.
  """
  found = _rate_factors(opt_state, inside_rate=False)
  if not any(kind == _RATE for kind, _ in found):
    return jnp.asarray(jnp.nan, jnp.float32)
  lr = jnp.ones((), jnp.float32)
  for _, value in found:
    lr = lr * jnp.asarray(value, jnp.float32).mean()
  return lr


def all_finite(tree: Any) -> jax.Array:
  """Whether every entry of every leaf of ``tree`` is finite (bool scalar)."""
  leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]
  return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def clipped_count(opt_state: optax.OptState) -> jax.Array | None:
  """Steps at which a controller's proposed rate was clipped at its bounds:
  the sum of every ``num_clipped`` state field (HD and the self-adaptive
  rule count them, cumulatively); ``None`` when the state has none."""
  found = []

  def visit(node):
    fields = getattr(node, "_fields", None)
    if fields is not None:
      for name in fields:
        child = getattr(node, name)
        if name == "num_clipped":
          found.append(jnp.asarray(child, jnp.int32))
        else:
          visit(child)
    elif isinstance(node, Mapping):
      for k in sorted(node):
        visit(node[k])
    elif isinstance(node, (list, tuple)):
      for child in node:
        visit(child)

  visit(opt_state)
  return sum(found) if found else None


def train_step(task: Task, optimizer: optax.GradientTransformation,
               state: TrainState, signals: SignalsFn = loss_signal
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD-style step on a fresh minibatch. Pure; returns (state, metrics).

  Metrics: ``train_loss``, ``grad_norm``, ``update_norm``, ``lr``
  (:func:`applied_learning_rate`), ``finite`` (bool: the loss and the
  updated parameters are finite), the task's minibatch metrics
  (:func:`lrmeta.tasks.protocol.batch_metrics`, named by
  :func:`history_key`: ``train_acc`` for a classification task) and, for
  controllers that clip their rate, ``clipped`` (:func:`clipped_count`).
  ``signals`` reach ``optimizer`` as extra arguments (see
  :func:`as_extra_args`).
  """
  opt = as_extra_args(optimizer)
  batch = task.train_batch(jax.random.fold_in(state.key, state.step))

  def loss_fn(params):
    return task.loss(params, state.model_state, batch, train=True)

  (loss, (model_state, aux)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  extra = signals(task, state, batch, loss, aux)
  updates, opt_state = opt.update(grads, state.opt_state, state.params,
                                  **extra)
  params = optax.apply_updates(state.params, updates)
  metrics = {
      "train_loss": loss,
      **{history_key("train", k): v
         for k, v in batch_metrics(task, batch, aux).items()},
      "grad_norm": optax.tree.norm(grads),
      "update_norm": optax.tree.norm(updates),
      "lr": applied_learning_rate(opt_state),
      # False from the step whose loss is non-finite or whose update made
      # the parameters non-finite; History.diverged_at reads it.
      "finite": jnp.isfinite(loss) & all_finite(params),
  }
  clipped = clipped_count(opt_state)
  if clipped is not None:
    metrics["clipped"] = clipped
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
