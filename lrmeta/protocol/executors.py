"""Executors: how the (rate, seed) runs of a method train.

``"population"`` trains every (rate, seed) of a call as one vmapped program
(:func:`lrmeta.train.train_population`; evaluations every ``eval_every``
steps, or once at the end). ``"sequential"`` compiles one whole run
(evaluations included) and calls it run after run, which on XLA:CPU is faster
for convolutional networks (``num_evals`` evaluations along a run). Both
return a :class:`~lrmeta.train.History` with the runs in the order given; a
tuning run evaluates validation once, at the end.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrmeta.protocol.methods import Method
from lrmeta.train import History, stack_hparams, train_population
from lrmeta.train.state import init_state, run_steps

EXECUTORS = ("population", "sequential")

# (task, method, steps, rates, seeds, splits, tuning) -> History
Executor = Callable[..., History]


def seed_keys(seeds: Sequence[int]) -> jax.Array:
  """One PRNG key per seed, stacked (a population's ``keys``)."""
  return jnp.stack([jax.random.key(int(s)) for s in seeds])


def population(task, method: Method, steps: int, lrs, seeds, splits, *,
               eval_every: int | None = None,
               eval_examples: int | None = None,
               quiet: bool = True) -> History:
  """``len(seeds)`` runs as one population (one per ``(lr, seed)`` pair;
  ``lrs=None``: every member at the method's fixed rate), evaluated every
  ``eval_every`` steps (``None``: once, at the end)."""
  if lrs is None:
    hparams, opt = None, method.make_optimizer(method.lr)

    def make(_):
      return opt
  else:
    hparams = stack_hparams({"lr": list(lrs)})

    def make(h):
      return method.make_optimizer(h["lr"])
  keys = seed_keys(seeds)
  # Members initialise one by one, eagerly: those ops compile once per
  # process, while a vmapped or jitted initialisation compiles again for
  # every population size (seconds a call on CPU; the values are the same).
  members = [init_state(task, make(jax.tree.map(lambda v, i=i: v[i], hparams)),
                        keys[i]) for i in range(len(seeds))]
  state = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
  _, hist = train_population(task, make, hparams, keys, steps,
                             eval_every=eval_every or steps,
                             eval_splits=tuple(splits),
                             eval_examples=eval_examples,
                             signals=method.signals, progress=not quiet,
                             state=state)
  return hist


def whole_run(task, method: Method, steps: int, num_evals: int, splits,
              eval_examples: int | None = None):
  """A jitted ``(key, lr) -> curves`` of one whole run (one compile) and the
  evaluation steps."""
  num_evals = max(1, min(num_evals, steps))
  bounds = np.linspace(0, steps, num_evals + 1).round().astype(int)
  chunks = [int(b - a) for a, b in zip(bounds[:-1], bounds[1:])]

  @jax.jit
  def one(key, lr):
    opt = method.make_optimizer(lr)
    st = init_state(task, opt, key)
    lrs, losses = [], []
    ev = {f"{sp}_{m}": [] for sp in splits for m in ("acc", "loss")}
    for c in chunks:
      st, m = run_steps(task, opt, st, c, signals=method.signals)
      lrs.append(m["lr"])
      losses.append(m["train_loss"])
      for split in splits:
        e = task.evaluate(st.params, st.model_state, split, eval_examples)
        ev[f"{split}_acc"].append(e["accuracy"])
        ev[f"{split}_loss"].append(e["loss"])
    out = {"lr": jnp.concatenate(lrs), "train_loss": jnp.concatenate(losses)}
    out.update({k: jnp.stack(v) for k, v in ev.items()})
    return out

  return one, bounds[1:]


def sequential(run_one, eval_steps, lrs, seeds) -> History:
  """Calls a :func:`whole_run` once per ``(lr, seed)``; the History of all."""
  t0 = time.perf_counter()
  outs = [jax.device_get(run_one(jax.random.key(int(s)), jnp.float32(lr)))
          for lr, s in zip(lrs, seeds)]
  cat = {k: np.stack([o[k] for o in outs]) for k in outs[0]}
  steps = ("lr", "train_loss")
  return History({k: cat[k] for k in steps}, eval_steps,
                 {k: v for k, v in cat.items() if k not in steps},
                 time.perf_counter() - t0)


def make_executor(kind: str, *, eval_every: int | None = None,
                  num_evals: int = 4, eval_examples: int | None = None,
                  quiet: bool = True) -> Executor:
  """The executor ``kind`` as ``run(task, method, steps, lrs, seeds, splits,
  tuning)``: ``lrs=None`` runs the method's fixed rate; ``tuning`` runs
  evaluate once, at the end. Sequential runners compile once per (task,
  method, budget, evaluation plan) within one executor."""
  if kind not in EXECUTORS:
    raise ValueError(f"executor must be one of {EXECUTORS}, got {kind!r}")
  cache = {}

  def run(task, method, steps, lrs, seeds, splits, tuning=False):
    if kind == "population":
      return population(task, method, steps, lrs, seeds, splits,
                        eval_every=None if tuning else eval_every,
                        eval_examples=eval_examples, quiet=quiet)
    evals = 1 if tuning else num_evals
    key = (id(task), id(method), steps, evals, tuple(splits))
    if key not in cache:  # the objects stay referenced, so ids stay unique
      cache[key] = (task, method, whole_run(task, method, steps, evals,
                                            tuple(splits), eval_examples))
    one, eval_steps = cache[key][2]
    rates = ([0.0 if method.lr is None else method.lr] * len(seeds)
             if lrs is None else list(lrs))
    return sequential(one, eval_steps, rates, seeds)

  return run
