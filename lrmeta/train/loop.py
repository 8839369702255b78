"""Inner training loops: scanned, vmapped over a population, and a reference.

``train`` runs one training run as jitted ``lax.scan`` chunks of
``eval_every`` steps, evaluating between chunks. ``train_population`` runs K
runs (seeds, hyperparameters, controller meta-parameters) as one vmapped
program. ``train_reference`` is the plain loop a user writes by hand with optax
(a Python ``for`` over a jitted step); it exists to check and benchmark the
others, which must give the same parameters for the same seed.

The population axis is the leading axis of every array in the state, so a
caller can shard it over devices: place the initial state with
:func:`shard_population` and ``jit`` propagates the sharding through the loop.
Nothing here pins a device.

A run that diverges is isolated (in a population, the other members are
unaffected) and reported: every step records whether its loss and updated
parameters are finite, :attr:`History.diverged_at` gives each run's first
non-finite step, and the progress bar counts diverged runs and averages its
metrics over the others.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from lrmeta.tasks.base import Task
from lrmeta.train.state import (SignalsFn, TrainState, history_key,
                                init_state, loss_signal, run_steps,
                                train_step)

OptimizerFactory = Callable[[Any], optax.GradientTransformation]


NEVER_DIVERGED = -1


def first_nonfinite_step(finite: np.ndarray) -> np.ndarray:
  """Index of the first False along the last axis; ``NEVER_DIVERGED`` if none.

  Args:
    finite: bool ``[..., num_steps]``, the ``finite`` step metric.

  Returns:
    int ``[...]``: one step index per run.
  """
  bad = ~np.asarray(finite, bool)
  return np.where(bad.any(axis=-1), np.argmax(bad, axis=-1),
                  NEVER_DIVERGED).astype(np.int64)


@dataclasses.dataclass
class History:
  """Metrics of a run (or of a population: a leading K axis on each array).

  ``steps`` holds per-step metrics (train_loss, grad_norm, update_norm, lr,
  finite and the task's minibatch metrics, e.g. train_acc), each of length
  ``num_steps``; ``evals`` holds every entry of the task's ``evaluate()``
  per split at ``eval_steps``, named by :func:`history_key`
  (``<split>_loss``, ``<split>_acc`` for accuracy, ``<split>_<name>`` for
  any other metric; empty for :func:`train_reference`).

  Divergence is read from the per-step ``finite`` flag, so it follows any
  slicing of ``steps``: :attr:`diverged_at` is, per run, the index into
  ``steps`` of the first step whose training loss was non-finite or whose
  update left non-finite parameters, and ``NEVER_DIVERGED`` (-1) for a run
  that stayed finite. The metrics of a diverged run after that step (NaN
  losses, chance-level accuracy of NaN logits) are not results; average over
  :meth:`finite` members, or report :attr:`num_diverged`.
  """

  steps: dict[str, np.ndarray]
  eval_steps: np.ndarray
  evals: dict[str, np.ndarray]
  wall_time: float

  @property
  def diverged_at(self) -> np.ndarray:
    """int ``[]`` (one run) or ``[K]``: first non-finite step, -1 if none."""
    finite = self.steps.get("finite")
    if finite is None:  # built by hand without the flag: the loss decides
      finite = np.isfinite(self.steps["train_loss"])
    return first_nonfinite_step(finite)

  def finite(self) -> np.ndarray:
    """bool ``[]`` or ``[K]``: which runs never diverged."""
    return self.diverged_at == NEVER_DIVERGED

  @property
  def num_diverged(self) -> int:
    return int(np.sum(~self.finite()))

  def select(self, members: Any) -> History:
    """The runs ``members`` (an index, slice, list or mask over axis K)."""
    return History({k: np.asarray(v)[members] for k, v in self.steps.items()},
                   self.eval_steps,
                   {k: np.asarray(v)[members] for k, v in self.evals.items()},
                   self.wall_time)

  def final(self, name: str) -> np.ndarray:
    return self.evals[name][..., -1]

  def steps_to_reach(self, name: str, target: float) -> np.ndarray:
    """First evaluated step at which ``evals[name] >= target`` (inf if never)."""
    vals = self.evals[name]
    hit = vals >= target
    first = np.argmax(hit, axis=-1)
    return np.where(hit.any(axis=-1), self.eval_steps[first], np.inf)


def _evaluate(task: Task, params, model_state, splits, max_examples):
  """Every ``evaluate()`` entry of every split, named by
  :func:`history_key`."""
  out = {}
  for split in splits:
    m = task.evaluate(params, model_state, split, max_examples)
    out.update({history_key(split, k): v for k, v in m.items()})
  return out


def _chunks(num_steps: int, eval_every: int) -> list[int]:
  if num_steps <= 0:
    raise ValueError(f"num_steps must be positive, got {num_steps}")
  if eval_every <= 0:
    raise ValueError(f"eval_every must be positive, got {eval_every}")
  sizes = [eval_every] * (num_steps // eval_every)
  if num_steps % eval_every:
    sizes.append(num_steps % eval_every)
  return sizes


def _progress(total, desc, show):
  return tqdm(total=total, desc=desc, disable=not show, unit="step",
              dynamic_ncols=True, leave=False)


def _mean(values, members: np.ndarray, fmt: str) -> str:
  values = np.asarray(values)[members]
  return format(values.mean(), fmt) if values.size else "nan"


def _postfix(bar, step_metrics, evals, healthy: np.ndarray):
  """Last loss, rate and accuracies, averaged over the runs still finite."""
  post = {"loss": _mean(np.asarray(step_metrics["train_loss"])[..., -1],
                        healthy, ".3f"),
          "lr": _mean(np.asarray(step_metrics["lr"])[..., -1], healthy,
                      ".3g")}
  for k, v in evals.items():
    if k.endswith("_acc"):
      post[k] = _mean(v, healthy, ".3f")
  bad = int(np.sum(~healthy))
  if healthy.ndim or bad:
    post["diverged"] = f"{bad}/{healthy.size}"
  bar.set_postfix(post)


def _run(chunk_fn, eval_fn, state, num_steps, eval_every, desc, progress):
  """Shared driver: chunks of scanned steps, evaluation between chunks.

  Metrics come to the host once per chunk (for the history and the progress
  bar); nothing inside a chunk waits for the host.
  """
  step_hist, eval_hist, eval_steps = [], [], []
  t0 = time.perf_counter()
  done = 0
  healthy = None
  with _progress(num_steps, desc, progress) as bar:
    for n in _chunks(num_steps, eval_every):
      state, metrics = chunk_fn(n)(state)
      evals = eval_fn(state)
      done += n
      metrics, evals = jax.device_get((metrics, evals))
      step_hist.append(metrics)
      eval_hist.append(evals)
      eval_steps.append(done)
      chunk_ok = np.asarray(metrics["finite"]).all(axis=-1)
      healthy = chunk_ok if healthy is None else healthy & chunk_ok
      healthy = np.asarray(healthy)
      bar.update(n)
      _postfix(bar, metrics, evals, healthy)
  jax.block_until_ready(state)
  wall = time.perf_counter() - t0
  # Scanned metrics are [n] for one run and [K, n] for a population.
  steps = {k: np.concatenate([np.asarray(m[k]) for m in step_hist], axis=-1)
           for k in step_hist[0]}
  evals = {k: np.stack([np.asarray(e[k]) for e in eval_hist], axis=-1)
           for k in eval_hist[0]}
  return state, History(steps, np.asarray(eval_steps), evals, wall)


def train(task: Task, optimizer: optax.GradientTransformation,
          key: jax.Array, num_steps: int, *, eval_every: int = 100,
          eval_splits: tuple[str, ...] = ("val", "test"),
          eval_examples: int | None = None,
          signals: SignalsFn = loss_signal, unroll: int | bool = 1,
          progress: bool = True, state: TrainState | None = None,
          ) -> tuple[TrainState, History]:
  """Trains one run: jitted ``lax.scan`` chunks of ``eval_every`` steps.

  Args:
    task: what to train.
    optimizer: any optax transformation; extra args from ``signals`` reach it
      (plain transformations ignore them).
    key: PRNG key of the run (model init and every minibatch).
    num_steps: inner steps.
    eval_every: steps per scanned chunk; splits are evaluated after each.
    eval_splits: which splits to evaluate (``"val"``, ``"test"``, ``"train"``).
    eval_examples: evaluate on the first N examples of each split only.
    signals: extra arguments for the optimizer (default ``value=`` loss).
    unroll: ``lax.scan`` unroll factor.
    progress: show a progress bar.
    state: resume from this state instead of initialising from ``key``.

  Returns:
    ``(final_state, history)``; ``history.diverged_at`` says whether and
    when the run diverged.
  """
  state = init_state(task, optimizer, key) if state is None else state
  cache = {}

  def chunk_fn(n):
    if n not in cache:
      cache[n] = jax.jit(lambda s: run_steps(task, optimizer, s, n,
                                             signals=signals, unroll=unroll))
    return cache[n]

  eval_jit = jax.jit(lambda s: _evaluate(task, s.params, s.model_state,
                                         eval_splits, eval_examples))
  return _run(chunk_fn, eval_jit, state, num_steps, eval_every,
              task.name, progress)


def init_population(task: Task, make_optimizer: OptimizerFactory,
                    hparams: Any, keys: jax.Array) -> TrainState:
  """Initial states of K runs; ``hparams`` leaves and ``keys`` have axis K."""
  return jax.vmap(lambda h, k: init_state(task, make_optimizer(h), k))(
      hparams, keys)


def train_population(task: Task, make_optimizer: OptimizerFactory,
                     hparams: Any, keys: jax.Array, num_steps: int, *,
                     eval_every: int = 100,
                     eval_splits: tuple[str, ...] = ("val", "test"),
                     eval_examples: int | None = None,
                     signals: SignalsFn = loss_signal,
                     unroll: int | bool = 1, progress: bool = True,
                     state: TrainState | None = None,
                     ) -> tuple[TrainState, History]:
  """Trains K runs as one vmapped program.

  Args:
    task: shared by all members (the data arrays are not copied per member).
    make_optimizer: ``hparams_i -> optax transformation``; called inside
      ``vmap`` with traced hyperparameters, so it must use them as arrays
      (e.g. ``lambda h: optax.sgd(h["lr"], momentum=0.9)``).
    hparams: pytree whose leaves have leading axis K (may be ``None`` for a
      population of seeds).
    keys: ``[K]`` PRNG keys, one per member.
    state: optional initial population state (e.g. placed with
      :func:`shard_population`); default :func:`init_population`.
    Other arguments: as in :func:`train`.

  Returns:
    ``(final_states, history)``, every leaf with leading axis K;
    ``history.diverged_at[i]`` is member i's first non-finite step (-1 if
    none).
  """
  if state is None:
    state = init_population(task, make_optimizer, hparams, keys)
  cache = {}

  def chunk_fn(n):
    if n not in cache:
      def member(h, s):
        return run_steps(task, make_optimizer(h), s, n, signals=signals,
                         unroll=unroll)
      run = jax.jit(jax.vmap(member))
      # hparams travel as an argument (not a constant) so that they keep the
      # sharding the caller gave them, matching the state's.
      cache[n] = lambda s, run=run: run(hparams, s)
    return cache[n]

  eval_jit = jax.jit(jax.vmap(lambda s: _evaluate(
      task, s.params, s.model_state, eval_splits, eval_examples)))
  return _run(chunk_fn, eval_jit, state, num_steps, eval_every,
              f"{task.name} x{keys.shape[0]}", progress)


def train_reference(task: Task, optimizer: optax.GradientTransformation,
                    key: jax.Array, num_steps: int, *,
                    signals: SignalsFn = loss_signal
                    ) -> tuple[TrainState, History]:
  """The plain reference: a Python loop over a jitted step (no scan).

  Returns:
    ``(final_state, history)``; the history has the per-step metrics (and
    so :attr:`History.diverged_at`) and no evaluations.
  """
  state = init_state(task, optimizer, key)
  step = jax.jit(lambda s: train_step(task, optimizer, s, signals))
  hist = []
  t0 = time.perf_counter()
  for _ in range(num_steps):
    state, m = step(state)
    hist.append(m)
  hist = jax.device_get(hist)
  wall = time.perf_counter() - t0
  steps = {k: np.asarray([m[k] for m in hist]) for k in hist[0]}
  return state, History(steps, np.zeros((0,), np.int64), {}, wall)


def population_mesh(devices=None, axis_name: str = "pop") -> jax.sharding.Mesh:
  """A 1-D mesh over ``devices`` (default: all) for the population axis.

  Its axis type is ``Auto``: shardings of the population inputs propagate
  through ``jit``/``vmap`` (GSPMD), so the loop code stays sharding-agnostic.
  """
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (axis_name,), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def shard_population(tree: Any, mesh: jax.sharding.Mesh,
                     axis_name: str = "pop") -> Any:
  """Places a population pytree with its leading axis split over ``mesh``.

  Example::

    mesh = population_mesh()
    h, keys = shard_population((h, keys), mesh)  # every population input
    state = shard_population(init_population(task, mk, h, keys), mesh)
    train_population(task, mk, h, keys, n, state=state)
  """
  spec = jax.sharding.PartitionSpec(axis_name)
  sharding = jax.sharding.NamedSharding(mesh, spec)
  return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def replicate_keys(seed: int, k: int) -> jax.Array:
  """``k`` independent run keys from one integer seed."""
  return jax.random.split(jax.random.key(seed), k)


def stack_hparams(values: dict[str, Any]) -> dict[str, jnp.ndarray]:
  """Turns ``{"lr": [0.1, 0.01]}`` into float32 arrays with leading axis K."""
  return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}
