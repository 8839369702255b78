"""What the training loops need of a task, and of a family of tasks.

A **task** is anything with the members of :class:`TaskProtocol`: ``init``,
``loss``, ``train_batch``, ``val_batch`` and ``evaluate``, all pure and
traceable, so the inner loops can ``jit``, ``scan`` and ``vmap`` them. The
loss is the task's own (softmax cross-entropy for
:class:`~lrmeta.tasks.Task`, next-token cross-entropy for a language model,
squared error for a regression); ``evaluate`` returns a dict with at least
``"loss"``, and the task's ``metric`` names the entry that judges it
(default ``"accuracy"``, higher is better unless ``maximize`` is False).

A **family** (:class:`TaskFamily`) is a set of task *shapes*: training
shapes, held-out shapes that training never sees, a sampler over its
training distribution and ``task(shape)``, after ``TaskFamily`` and
``single_task_to_family`` of ``learned_optimization``. A *shape* is a
hashable description of one training run without its run seed (the members
of :class:`Shape`): runs of one shape share data and program and differ only
in the seed, so they train as one vmapped population.

* :class:`Shape` is a base for a family's shape dataclass;
* :class:`ShapeFamily` is a family from a tuple of training shapes and a
  tuple of held-out shapes whose shapes build their own tasks;
* :func:`single` makes one task a family of one;
* :func:`sample_shapes` is the one shape sampler: distinct training shapes,
  deterministic in the key, never a held-out shape;
* :func:`judged_shapes` is where a family is judged: its held-out shapes, or
  for a family without any (a single task) its training shapes at unseen
  seeds.

Code that holds only runs (the meta layer's whole-run scoring, the held-out
protocol through :func:`lrmeta.tasks.family.instance_task`) builds a run's
task with ``run.task()``; a family whose shapes define ``task()`` returns
the same from ``task(shape)``.

:class:`lrmeta.tasks.family.Family` (pooled images, small MLPs) is the
built-in implementation.

References:
  Metz et al., ``learned_optimization``, ``tasks/base.py`` (``TaskFamily``,
  ``single_task_to_family``), 2022.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Hashable, Protocol, runtime_checkable

import jax
import numpy as np
import optax

DEFAULT_METRIC = "accuracy"
# Draws the sampler makes before it gives up on finding more distinct shapes.
MAX_DRAWS = 100


@runtime_checkable
class TaskProtocol(Protocol):
  """The members of a task that the training loops call.

  Optional members, read with :func:`metric_of`, :func:`maximizes` and
  :func:`batch_metrics` when absent: ``metric: str`` (the key of
  ``evaluate()`` that judges the task; default ``"accuracy"``),
  ``maximize: bool`` (default True) and ``batch_metrics(batch, aux)`` (a
  dict of per-step training metrics from a minibatch and the loss's
  auxiliary output; default none).
  """

  name: str

  def init(self, key: jax.Array) -> tuple[optax.Params, Any]:
    """``(params, model_state)``; model_state may be an empty dict."""

  def loss(self, params: optax.Params, model_state: Any, batch: Any,
           train: bool = True) -> tuple[jax.Array, tuple[Any, Any]]:
    """``(scalar loss, (new_model_state, aux))``; aux reaches the
    optimizer's signal function and :func:`batch_metrics`."""

  def train_batch(self, key: jax.Array) -> Any:
    """A training minibatch drawn from ``key``."""

  def val_batch(self, key: jax.Array, batch_size: int | None = None) -> Any:
    """A validation minibatch drawn from ``key``."""

  def evaluate(self, params: optax.Params, model_state: Any,
               split: str = "test", max_examples: int | None = None
               ) -> dict[str, jax.Array]:
    """Metrics over a whole split (``"val"``, ``"test"``): at least
    ``"loss"``, and the task's metric."""


def metric_of(task: Any) -> str:
  """The ``evaluate()`` key that judges ``task`` (default ``"accuracy"``)."""
  return getattr(task, "metric", DEFAULT_METRIC)


def maximizes(task: Any) -> bool:
  """Whether a higher :func:`metric_of` is better (default True)."""
  return bool(getattr(task, "maximize", True))


def batch_metrics(task: Any, batch: Any, aux: Any) -> dict[str, jax.Array]:
  """The task's per-step training metrics (empty when it defines none)."""
  fn = getattr(task, "batch_metrics", None)
  return {} if fn is None else dict(fn(batch, aux))


# -- shapes --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shape:
  """Base of a family's shapes: a training budget and a run seed.

  Subclass it as a frozen dataclass with the fields that say what to train
  and define ``task(self)``; :class:`ShapeFamily` and
  :func:`lrmeta.tasks.family.instance_task` build a shape's task with it.
  (Any hashable object with these members works as a shape, e.g.
  :class:`lrmeta.tasks.family.Instance`.)

  Attributes:
    num_steps: the training budget ``T`` in steps.
    seed: the run seed (initialisation and minibatch order); a shape proper
      has seed 0 (:attr:`shape`), an instance of it any seed.
  """

  num_steps: int
  seed: int = 0

  def __post_init__(self):
    if self.num_steps <= 0:
      raise ValueError(f"num_steps must be positive, got {self.num_steps}")
    if self.seed < 0:
      raise ValueError(f"seed must be non-negative, got {self.seed}")

  @property
  def shape(self) -> Shape:
    """This run with its seed cleared."""
    return dataclasses.replace(self, seed=0)

  def key(self) -> jax.Array:
    """The run's PRNG key."""
    return jax.random.key(self.seed)

  @property
  def name(self) -> str:
    """``field=value`` of every field but the seed, joined by ``/``, then
    the seed (used in tables)."""
    parts = [f"{f.name}={getattr(self, f.name)}"
             for f in dataclasses.fields(self) if f.name != "seed"]
    return "/".join(parts + [f"s{self.seed}"])


@runtime_checkable
class TaskFamily(Protocol):
  """A family of task shapes.

  Attributes:
    train_shapes: the shapes training may use (none of them held out).
    held_out_shapes: shapes kept for judging; training never sees them.
  """

  train_shapes: Sequence[Hashable]
  held_out_shapes: Sequence[Hashable]

  def sample(self, key: jax.Array, n: int) -> Sequence[Any]:
    """``n`` draws from the family's training distribution (shapes or runs;
    :func:`sample_shapes` reads their ``.shape``)."""

  def task(self, shape: Any) -> Any:
    """The task (a :class:`TaskProtocol`) of ``shape``."""


def _uniform(shapes: Sequence[Any], key: jax.Array, n: int) -> tuple:
  picks = np.asarray(jax.random.randint(key, (n,), 0, len(shapes)))
  return tuple(shapes[i] for i in picks.tolist())


@dataclasses.dataclass(frozen=True)
class ShapeFamily:
  """A family given by its shapes; each shape builds its own task.

  Attributes:
    train_shapes: training shapes (seeds cleared; repeats dropped).
    held_out_shapes: held-out shapes; none may be a training shape.
  """

  train_shapes: tuple[Any, ...]
  held_out_shapes: tuple[Any, ...] = ()

  def __post_init__(self):
    train = tuple(dict.fromkeys(s.shape for s in self.train_shapes))
    held = tuple(dict.fromkeys(s.shape for s in self.held_out_shapes))
    if not train:
      raise ValueError("a family needs at least one training shape")
    both = [s.name for s in held if s in set(train)]
    if both:
      raise ValueError(f"shapes both trained on and held out: {both}")
    object.__setattr__(self, "train_shapes", train)
    object.__setattr__(self, "held_out_shapes", held)

  def sample(self, key: jax.Array, n: int) -> tuple[Any, ...]:
    """``n`` training shapes drawn uniformly with replacement."""
    return _uniform(self.train_shapes, key, n)

  def task(self, shape: Any) -> Any:
    """``shape.task()``."""
    return shape.task()


@dataclasses.dataclass(frozen=True, kw_only=True)
class SingleShape(Shape):
  """The one shape of :func:`single`: the task itself and its budget.

  Compared and hashed by the task's identity (a task holds arrays).
  """

  task_ref: Any = dataclasses.field(compare=False, repr=False)
  task_id: int = dataclasses.field(default=0, init=False)

  def __post_init__(self):
    super().__post_init__()
    object.__setattr__(self, "task_id", id(self.task_ref))

  def task(self) -> Any:
    return self.task_ref

  @property
  def name(self) -> str:
    return f"{self.task_ref.name}/T{self.num_steps}/s{self.seed}"


def single(task: Any, num_steps: int) -> ShapeFamily:
  """``task`` trained for ``num_steps`` steps as a family of one.

  Its one training shape is the task; it has no held-out shape, so it is
  judged on that shape at unseen seeds (:func:`judged_shapes`).
  """
  return ShapeFamily((SingleShape(task_ref=task, num_steps=num_steps),))


def judged_shapes(family: TaskFamily) -> tuple[Any, ...]:
  """Where ``family`` is judged: its held-out shapes, or its training
  shapes when it holds none out (a family of one)."""
  return tuple(family.held_out_shapes) or tuple(family.train_shapes)


def sample_shapes(family: TaskFamily, key: jax.Array, n: int
                  ) -> tuple[Any, ...]:
  """``n`` distinct training shapes of ``family``, never a held-out one.

  Draw ``i`` is ``family.sample(jax.random.fold_in(key, i), n)``; shapes are
  kept in order of first appearance, skipping repeats and held-out shapes,
  until ``n`` are found.

  Args:
    family: a :class:`TaskFamily`.
    key: PRNG key; the result is deterministic in it.
    n: how many shapes, at most the family's distinct training shapes.

  Returns:
    A tuple of ``n`` shapes (seeds cleared).

  Raises:
    ValueError: ``n`` is not positive or exceeds the training shapes, or
      ``MAX_DRAWS`` draws found fewer than ``n``.
  """
  held = {s.shape for s in family.held_out_shapes}
  available = len({s.shape for s in family.train_shapes} - held)
  if n <= 0 or n > available:
    raise ValueError(f"sample_shapes: n must be in [1, {available}] (the "
                     f"family's training shapes), got {n}")
  shapes: dict[Any, None] = {}
  for draw in range(MAX_DRAWS):
    for run in family.sample(jax.random.fold_in(key, draw), n):
      if run.shape not in held and len(shapes) < n:
        shapes.setdefault(run.shape)
    if len(shapes) == n:
      return tuple(shapes)
  raise ValueError(f"sample_shapes: {MAX_DRAWS} draws found {len(shapes)} "
                   f"of {n} distinct training shapes")


__all__ = ["DEFAULT_METRIC", "Shape", "ShapeFamily", "SingleShape",
           "TaskFamily", "TaskProtocol", "batch_metrics", "maximizes",
           "metric_of", "sample_shapes", "single", "judged_shapes"]
