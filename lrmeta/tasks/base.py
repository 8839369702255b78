"""A task bundles a dataset, a model, the loss and the metrics.

Tasks are immutable and hold no training state; all functions they expose are
pure and traceable, so the inner loop can ``jit``/``scan``/``vmap`` them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lrmeta.data import Batch, Dataset, load_dataset
from lrmeta.models import make_model

Variables = Any  # {"params": ..., maybe "batch_stats": ...}


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
  """Image classification with softmax cross-entropy.

  One implementation of :class:`lrmeta.tasks.protocol.TaskProtocol`; judged
  by ``evaluate()["accuracy"]`` (higher is better). Tasks compare and hash
  by identity (they hold arrays).

  Attributes:
    name: short identifier used in tables, e.g. ``"fashion_mnist/small_cnn"``.
    dataset: device-resident data with train/val/test splits.
    model: a Flax module called as ``model.apply(vars, x, train=...)``.
    batch_size: training minibatch size.
    eval_batch_size: chunk size used when evaluating a whole split.
  """

  name: str
  dataset: Dataset
  model: nn.Module
  batch_size: int = 128
  eval_batch_size: int = 500

  metric: ClassVar[str] = "accuracy"
  maximize: ClassVar[bool] = True

  # -- parameters -----------------------------------------------------------
  def init(self, key: jax.Array) -> tuple[optax.Params, Any]:
    """Returns ``(params, model_state)``; model_state holds e.g. BatchNorm
    running statistics (an empty dict for models without state)."""
    x = jnp.zeros((1,) + self.dataset.image_shape, jnp.float32)
    variables = self.model.init(key, x, train=False)
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    return params, model_state

  # -- loss -----------------------------------------------------------------
  def apply(self, params, model_state, images, train: bool):
    variables = {"params": params, **model_state}
    if train and model_state:
      logits, new_state = self.model.apply(variables, images, train=True,
                                           mutable=list(model_state))
      return logits, dict(new_state)
    return self.model.apply(variables, images, train=train), model_state

  def loss(self, params, model_state, batch: Batch, train: bool = True):
    """Mean cross-entropy; returns ``(loss, (new_model_state, logits))``."""
    logits, new_state = self.apply(params, model_state, batch.image, train)
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch.label).mean()
    return loss, (new_state, logits)

  def batch_metrics(self, batch: Batch, logits: jax.Array
                    ) -> dict[str, jax.Array]:
    """``{"accuracy"}`` of a training minibatch (the loss's aux is the
    logits)."""
    return {"accuracy": accuracy(logits, batch.label)}

  # -- batches --------------------------------------------------------------
  def train_batch(self, key: jax.Array) -> Batch:
    return self.dataset.sample_train_batch(key, self.batch_size)

  def val_batch(self, key: jax.Array, batch_size: int | None = None) -> Batch:
    return self.dataset.sample_val_batch(key, batch_size or self.batch_size)

  # -- evaluation -----------------------------------------------------------
  def evaluate(self, params, model_state, split: str = "test",
               max_examples: int | None = None) -> dict[str, jax.Array]:
    """Loss and accuracy over a whole split (or its first ``max_examples``).

    Traceable: runs as a ``lax.map`` over fixed-size chunks, so it can be
    jitted and vmapped over a population of parameters.
    """
    xs, ys = self.dataset.split_arrays(split)
    n = xs.shape[0] if max_examples is None else min(max_examples, xs.shape[0])
    bs = min(self.eval_batch_size, n)
    chunks = n // bs
    if chunks == 0:
      raise ValueError(f"split {split!r} has no examples")
    xs = xs[:chunks * bs].reshape((chunks, bs) + xs.shape[1:])
    ys = ys[:chunks * bs].reshape(chunks, bs)

    def one(args):
      x, y = args
      logits, _ = self.apply(params, model_state, self.dataset.normalize(x),
                             train=False)
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
      return ce.sum(), (jnp.argmax(logits, -1) == y).sum()

    ce, correct = jax.lax.map(one, (xs, ys))
    total = chunks * bs
    return {"loss": ce.sum() / total, "accuracy": correct.sum() / total}


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  chex.assert_rank(logits, 2)
  return (jnp.argmax(logits, -1) == labels).mean()


def make_task(dataset: str = "fashion_mnist", model: str = "small_cnn", *,
              batch_size: int = 128, data_kwargs: dict | None = None,
              model_kwargs: dict | None = None, eval_batch_size: int = 500,
              data: Dataset | None = None) -> Task:
  """Builds a task from names (the form configs use).

  Args:
    dataset: dataset name, see :data:`lrmeta.data.DATASETS`.
    model: model name, see :data:`lrmeta.models.MODELS`.
    batch_size: training minibatch size.
    data_kwargs: forwarded to :func:`lrmeta.data.load_dataset`.
    model_kwargs: forwarded to the model constructor.
    eval_batch_size: chunk size for full-split evaluation.
    data: an already loaded dataset (skips loading; ``dataset`` is then only
      used in the task's name).
  """
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  ds = data if data is not None else load_dataset(dataset, **(data_kwargs or {}))
  net = make_model(model, ds.num_classes, **(model_kwargs or {}))
  return Task(f"{dataset}/{model}", ds, net, batch_size, eval_batch_size)
