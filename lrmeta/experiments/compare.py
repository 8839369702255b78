"""One compare path: tune each method's base rate on validation, test it on
fresh paired seeds, and the statistics of paired differences.

Every job that compares controllers with hand-designed schedules goes
through :func:`compare`: each :class:`Method` maps a base rate to an Optax
optimizer (a schedule's peak rate, a learned controller's starting rate, or
ignored by controllers that set the rate themselves); methods with a fixed
rate skip tuning. The base rate of a tuned method is the grid value with the
best mean final validation accuracy over ``tune_seeds`` (a diverged run
counts as accuracy 0); the method is then trained on ``test_seeds`` at that
rate. With ``test_seeds == tune_seeds`` the tuning runs are the test runs.
Every method sees the same seeds, so differences between two methods are
paired by seed (:func:`paired_difference`).

Two executors run the same protocol: ``"population"`` trains every (rate,
seed) of a method as one vmapped program (:func:`lrmeta.train.
train_population`; evaluations every ``eval_every`` steps), ``"sequential"``
compiles one whole run (evaluations included) and calls it seed after seed,
which on XLA:CPU is faster for convolutional networks (``num_evals``
evaluations along a test run; tuning runs evaluate validation once, at the
end).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats

from lrmeta.tasks import Task
from lrmeta.train import History, stack_hparams, train_population
from lrmeta.train.state import SignalsFn, init_state, loss_signal, run_steps

EXECUTORS = ("population", "sequential")


@dataclasses.dataclass(frozen=True)
class Method:
  """One row of a comparison.

  Attributes:
    make_optimizer: base rate -> Optax transformation (the rate may be a
      traced array).
    signals: the training-loop signals the transformation reads.
    lr: the base rate when not tuned (``None`` for controllers that set the
      rate themselves).
    tune: tune the base rate over the protocol's grid (when it is not
      empty).
  """

  make_optimizer: Callable[[Any], optax.GradientTransformation]
  signals: SignalsFn = loss_signal
  lr: float | None = None
  tune: bool = True


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Budget, seeds, grid and evaluation settings shared by every method."""

  steps: int
  lr_grid: tuple[float, ...]
  tune_seeds: tuple[int, ...]
  test_seeds: tuple[int, ...]
  eval_every: int = 100
  num_evals: int = 4
  eval_examples: int | None = None
  executor: str = "population"

  def __post_init__(self):
    if self.executor not in EXECUTORS:
      raise ValueError(f"executor must be one of {EXECUTORS}, got "
                       f"{self.executor!r}")
    if not self.test_seeds:
      raise ValueError("test_seeds is empty")


@dataclasses.dataclass
class Result:
  """A method's outcome: its base rate (``None`` when it has none to tune
  and no fixed value), the mean validation accuracy per grid rate (empty
  when not tuned), the test seeds and their :class:`~lrmeta.train.History`
  (members in the order of ``seeds``)."""

  lr: float | None
  grid_val_acc: list[float]
  hist: History
  seeds: tuple[int, ...]


def fixed(optimizer: optax.GradientTransformation,
          signals: SignalsFn = loss_signal) -> Method:
  """A method that is one ready optimizer (nothing to tune)."""
  return Method(lambda _: optimizer, signals, tune=False)


def seed_keys(seeds: Sequence[int]) -> jax.Array:
  """One PRNG key per seed, stacked (a population's ``keys``)."""
  return jnp.stack([jax.random.key(int(s)) for s in seeds])


def _best(val_acc) -> int:
  """Index of the best grid rate; NaN (diverged) counts as 0."""
  return int(np.argmax(np.nan_to_num(np.asarray(val_acc))))


# -- population executor ------------------------------------------------------

def _population(task, method: Method, lrs, seeds, p: Protocol, quiet: bool,
                splits=("val", "test"), eval_every=None) -> History:
  kwargs = dict(eval_every=eval_every or p.eval_every, eval_splits=splits,
                eval_examples=p.eval_examples or None, signals=method.signals,
                progress=not quiet)
  if lrs is None:  # one optimizer for every member
    opt = method.make_optimizer(method.lr)
    _, hist = train_population(task, lambda _: opt, None, seed_keys(seeds),
                               p.steps, **kwargs)
  else:
    _, hist = train_population(
        task, lambda h: method.make_optimizer(h["lr"]),
        stack_hparams({"lr": list(lrs)}), seed_keys(seeds), p.steps,
        **kwargs)
  return hist


def _tune_population(task, method, p: Protocol, quiet: bool):
  grid, seeds = tuple(p.lr_grid), tuple(p.tune_seeds)
  lrs = [lr for lr in grid for _ in seeds]
  hist = _population(task, method, lrs, [s for _ in grid for s in seeds], p,
                     quiet)
  val = np.nan_to_num(hist.final("val_acc").reshape(len(grid), len(seeds)))
  val = val.mean(1)
  best = _best(val)
  if tuple(p.test_seeds) == seeds:
    test = hist.select(slice(best * len(seeds), (best + 1) * len(seeds)))
  else:
    test = _population(task, method, [grid[best]] * len(p.test_seeds),
                       p.test_seeds, p, quiet)
  return grid[best], val.tolist(), test


# -- sequential executor ------------------------------------------------------

def _runner(task, method: Method, p: Protocol, num_evals: int, splits):
  """A jitted ``(key, lr) -> curves`` of one whole run (one compile)."""
  num_evals = max(1, min(num_evals, p.steps))
  bounds = np.linspace(0, p.steps, num_evals + 1).round().astype(int)
  chunks = [int(b - a) for a, b in zip(bounds[:-1], bounds[1:])]
  examples = p.eval_examples or None

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
        e = task.evaluate(st.params, st.model_state, split, examples)
        ev[f"{split}_acc"].append(e["accuracy"])
        ev[f"{split}_loss"].append(e["loss"])
    out = {"lr": jnp.concatenate(lrs), "train_loss": jnp.concatenate(losses)}
    out.update({k: jnp.stack(v) for k, v in ev.items()})
    return out

  def run(seeds, lr) -> History:
    t0 = time.perf_counter()
    outs = [jax.device_get(one(jax.random.key(int(s)), jnp.float32(lr)))
            for s in seeds]
    cat = {k: np.stack([o[k] for o in outs]) for k in outs[0]}
    return History({k: cat[k] for k in ("lr", "train_loss")}, bounds[1:],
                   {k: v for k, v in cat.items()
                    if k not in ("lr", "train_loss")},
                   time.perf_counter() - t0)

  return run


def _tune_sequential(task, method, p: Protocol):
  tuner = _runner(task, method, p, 1, ("val",))
  val = [float(tuner(p.tune_seeds, lr).final("val_acc").mean())
         for lr in p.lr_grid]
  best = float(p.lr_grid[_best(val)])
  test = _runner(task, method, p, p.num_evals, ("val", "test"))(
      p.test_seeds, best)
  return best, val, test


# -- the comparison -----------------------------------------------------------

def compare(task: Task, methods: dict[str, Method], protocol: Protocol, *,
            quiet: bool = False, log: Callable[[str], None] | None = None
            ) -> dict[str, Result]:
  """Runs the protocol for every method (in order); returns
  ``name -> Result``. ``log`` receives one line per method."""
  out = {}
  for name, method in methods.items():
    t0 = time.perf_counter()
    tuned = method.tune and len(protocol.lr_grid) > 0
    if protocol.executor == "sequential":
      if tuned:
        lr, grid_val, hist = _tune_sequential(task, method, protocol)
      else:
        lr, grid_val = method.lr, []
        hist = _runner(task, method, protocol, protocol.num_evals,
                       ("val", "test"))(protocol.test_seeds,
                                        0.0 if lr is None else lr)
    elif tuned:
      lr, grid_val, hist = _tune_population(task, method, protocol, quiet)
    else:
      lr, grid_val = method.lr, []
      hist = _population(task, method, None, protocol.test_seeds, protocol,
                         quiet)
    out[name] = Result(lr, grid_val, hist, tuple(protocol.test_seeds))
    if log is not None:
      acc = 100 * hist.final("test_acc")
      tune = (f"tuned lr {lr:g} (val acc over grid "
              f"{np.round(grid_val, 4).tolist()}), " if grid_val else "")
      log(f"  {name}: {tune}test acc {acc.mean():.2f}% over "
          f"{acc.size} seeds [{time.perf_counter() - t0:.0f}s]")
  return out


def paired_difference(a, b, confidence: float = 0.95) -> dict[str, float]:
  """Mean of ``a - b`` over paired seeds and its Student-t interval.

  Returns:
    ``{"mean", "ci_low", "ci_high", "n"}`` (the interval is NaN with fewer
    than two pairs).
  """
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  n = d.size
  mean = float(d.mean())
  if n < 2:
    return {"mean": mean, "ci_low": float("nan"), "ci_high": float("nan"),
            "n": n}
  half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1) *
               d.std(ddof=1) / np.sqrt(n))
  return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def best_baseline(results: dict[str, Result], exclude: Sequence[str] = ()
                  ) -> str:
  """The method with the best mean final test accuracy, among those not in
  ``exclude``."""
  scores = {n: float(r.hist.final("test_acc").mean())
            for n, r in results.items() if n not in exclude}
  return max(scores, key=scores.get)
