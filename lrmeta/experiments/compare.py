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

On the task family, :func:`compare_family` runs the same idea over several
instance shapes, with rates tuned per instance and per family on a widening
sqrt(2) grid (:class:`FamilyProtocol`), and :func:`family_differences` pairs
test runs by (shape, seed).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats

from lrmeta.tasks import Task
from lrmeta.tasks.family import Instance, instance_task
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


# -- family protocol ----------------------------------------------------------
#
# The comparison above tunes and tests on one task. On the task family
# (:mod:`lrmeta.tasks.family`) a method is compared over several instance
# shapes, with its rate tuned two ways: per instance (each shape gets its own
# best validation rate, the usual upper bound for a hand-designed schedule)
# and per family (one rate for every shape, which is what a rule that must
# transfer is held to). Rates live on a sqrt(2)-spaced grid that widens by
# one step when the best rate sits on its edge, so a grid placed badly still
# finds the optimum within ``max_widen`` steps.

SQRT2 = math.sqrt(2.0)
MIN_GRID = 8


def sqrt2_grid(low: float, n: int = MIN_GRID) -> tuple[float, ...]:
  """``n`` rates ``low * sqrt(2)**k``, ``k = 0 .. n-1``."""
  return tuple(float(low * SQRT2**k) for k in range(n))


@dataclasses.dataclass(frozen=True)
class FamilyProtocol:
  """Grid, seeds and widening of :func:`compare_family`.

  Attributes:
    lr_grid: at least 8 increasing rates, consecutive ratio sqrt(2)
      (:func:`sqrt2_grid`).
    tune_seeds: run seeds of the tuning runs (scored on validation).
    test_seeds: run seeds of the test runs, the same for every method and
      shape so that differences pair by (shape, seed); at least two (ten or
      more for a reported table).
    max_widen: how many times a tuning may step past the edge of the rates
      evaluated so far (per shape for per-instance tuning; in total for
      per-family tuning).
  """

  lr_grid: tuple[float, ...]
  tune_seeds: tuple[int, ...]
  test_seeds: tuple[int, ...]
  max_widen: int = 4

  def __post_init__(self):
    grid = tuple(float(r) for r in self.lr_grid)
    object.__setattr__(self, "lr_grid", grid)
    object.__setattr__(self, "tune_seeds",
                       tuple(int(s) for s in self.tune_seeds))
    object.__setattr__(self, "test_seeds",
                       tuple(int(s) for s in self.test_seeds))
    if len(grid) < MIN_GRID or not all(math.isfinite(r) and r > 0
                                       for r in grid):
      raise ValueError(f"lr_grid needs at least {MIN_GRID} positive rates, "
                       f"got {grid}")
    ratios = np.asarray(grid[1:]) / np.asarray(grid[:-1])
    if not np.allclose(ratios, SQRT2, rtol=1e-6, atol=0.0):
      raise ValueError(f"lr_grid must step by a factor sqrt(2) (use "
                       f"sqrt2_grid), got ratios {np.round(ratios, 4)}")
    for name, seeds, least in (("tune_seeds", self.tune_seeds, 1),
                               ("test_seeds", self.test_seeds, 2)):
      if len(seeds) < least or len(set(seeds)) != len(seeds):
        raise ValueError(f"{name} needs at least {least} distinct seeds, "
                         f"got {seeds}")
    if int(self.max_widen) != self.max_widen or self.max_widen < 0:
      raise ValueError(f"max_widen must be an integer >= 0, got "
                       f"{self.max_widen}")

  def rate(self, k: int) -> float:
    """Rate ``k`` of the grid extended both ways by factors sqrt(2)
    (``k < 0`` below the grid, ``k >= len(lr_grid)`` above it)."""
    n = len(self.lr_grid)
    if k < 0:
      return float(self.lr_grid[0] / SQRT2**-k)
    if k >= n:
      return float(self.lr_grid[-1] * SQRT2**(k - n + 1))
    return self.lr_grid[k]


# A method for one instance shape; its budget ``shape.num_steps`` is known to
# it, so a schedule can decay over the run.
FamilyMethod = Callable[[Instance], Method]


@dataclasses.dataclass
class FamilyResult:
  """One method on every shape of :func:`compare_family`.

  Attributes:
    per_instance: shape -> test result at that shape's own tuned rate.
    per_family: shape -> test result at :attr:`family_lr` (for a method
      without tuning, the same dict as ``per_instance``).
    family_lr: the one rate tuned for all shapes (``None`` when not tuned).
    grid_val_acc: shape -> {evaluated rate: mean final validation accuracy
      over the tune seeds}, rates increasing (empty when not tuned). Each
      :class:`Result`'s ``grid_val_acc`` lists these values in that order.
  """

  per_instance: dict[Instance, Result]
  per_family: dict[Instance, Result]
  family_lr: float | None
  grid_val_acc: dict[Instance, dict[float, float]]


def _final_acc(hist: History, split: str) -> np.ndarray:
  """Final accuracy per run; a run that diverged (or a NaN) counts as 0."""
  acc = np.nan_to_num(np.asarray(hist.final(f"{split}_acc"), np.float64))
  return np.where(np.asarray(hist.finite()), acc, 0.0)


def _beyond_edge(scores: dict[int, float]) -> int | None:
  """The index one step past the edge the best score sits on, or ``None``
  when it is inside (ties go to the lower rate, as in :func:`_best`)."""
  ks = sorted(scores)
  best = ks[_best([scores[k] for k in ks])]
  if best == ks[0]:
    return best - 1
  if best == ks[-1]:
    return best + 1
  return None


def _argmax_rate(scores: dict[int, float]) -> int:
  ks = sorted(scores)
  return ks[_best([scores[k] for k in ks])]


def _family_population(task, method: Method, steps: int, lrs, seeds, splits,
                       quiet: bool) -> History:
  """``len(seeds)`` runs (one per ``(lr, seed)`` pair; ``lrs=None``: the
  method's fixed rate), evaluated once, at the end."""
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
                             eval_every=steps, eval_splits=splits,
                             signals=method.signals, progress=not quiet,
                             state=state)
  return hist


def _tune_family(shapes, tasks, methods, p: FamilyProtocol, quiet: bool):
  """Per-instance and per-family tuning with widening; returns the
  validation scores ``{shape: {k: acc}}``, the per-instance indices and the
  family index (indices into :meth:`FamilyProtocol.rate`)."""
  val: dict[Instance, dict[int, float]] = {s: {} for s in shapes}

  def evaluate(shape, ks):
    seeds = list(p.tune_seeds)
    hist = _family_population(
        tasks[shape], methods[shape], shape.num_steps,
        [p.rate(k) for k in ks for _ in seeds], seeds * len(ks), ("val",),
        quiet)
    acc = _final_acc(hist, "val").reshape(len(ks), len(seeds)).mean(1)
    val[shape].update({k: float(a) for k, a in zip(ks, acc)})

  for shape in shapes:
    evaluate(shape, list(range(len(p.lr_grid))))
  left = {s: p.max_widen for s in shapes}
  family_left = p.max_widen
  while True:
    todo: dict[Instance, list[int]] = {}
    for shape in shapes:
      k = _beyond_edge(val[shape]) if left[shape] else None
      if k is not None:
        todo[shape] = [k]
        left[shape] -= 1
    k = _beyond_edge(_family_scores(val)) if family_left else None
    if k is not None:
      family_left -= 1
      for shape in shapes:
        if k not in val[shape] and k not in todo.get(shape, []):
          todo.setdefault(shape, []).append(k)
    if not todo:
      break
    for shape, ks in todo.items():
      evaluate(shape, ks)
  return (val, {s: _argmax_rate(val[s]) for s in shapes},
          _argmax_rate(_family_scores(val)))


def _family_scores(val: dict[Instance, dict[int, float]]
                   ) -> dict[int, float]:
  """Mean over shapes of the validation score, on the rates every shape
  has evaluated."""
  common = set.intersection(*(set(v) for v in val.values()))
  return {k: float(np.mean([v[k] for v in val.values()])) for k in common}


def compare_family(shapes: Sequence[Instance],
                   methods: dict[str, FamilyMethod],
                   protocol: FamilyProtocol, *, quiet: bool = False,
                   log: Callable[[str], None] | None = None
                   ) -> dict[str, FamilyResult]:
  """Compares methods over the shapes of the task family.

  Every run of a shape trains :func:`lrmeta.tasks.family.instance_task` of
  that shape for its budget ``T = shape.num_steps`` and is evaluated once,
  at the end. For a tuned method (``method.tune``):

  1. the grid times ``tune_seeds`` trains as one population per shape; a
     rate's score on a shape is the mean final validation accuracy over the
     tune seeds (a diverged run counts as 0);
  2. per-instance tuning: while a shape's best rate lies on an edge of the
     rates evaluated for that shape, the rate one sqrt(2) step beyond that
     edge is evaluated (at most ``max_widen`` times per shape);
  3. per-family tuning: the family rate is the rate evaluated on every shape
     with the best mean score over shapes; while it lies on an edge of those
     rates, the next rate beyond it is run on every shape lacking it (at
     most ``max_widen`` times). Steps 2 and 3 alternate until neither widens,
     so each chosen rate is the argmax of the scores evaluated; no (shape,
     rate) is trained twice;
  4. test: each shape trains ``test_seeds`` at its own rate and at the
     family rate (one population; one set of runs when the rates coincide).

  A method without tuning trains ``test_seeds`` at ``method.lr`` once per
  shape; its per-family result is its per-instance result.

  Args:
    shapes: instance shapes (run seeds are ignored: results are keyed by
      ``instance.shape``); distinct.
    methods: name -> :data:`FamilyMethod`.
    protocol: grid, seeds, widening.
    quiet: no progress bars.
    log: receives one line per (method, shape) and each method's time.

  Returns:
    ``name -> FamilyResult``; per-shape results hold the test runs in the
    order of ``protocol.test_seeds``.
  """
  shapes = [s.shape for s in shapes]
  if not shapes or len(set(shapes)) != len(shapes):
    raise ValueError(f"compare_family needs distinct shapes, got "
                     f"{[s.name for s in shapes]}")
  tasks = {s: instance_task(s) for s in shapes}
  seeds = list(protocol.test_seeds)
  out = {}
  for name, factory in methods.items():
    t0 = time.perf_counter()
    built = {s: factory(s) for s in shapes}
    tuned = {bool(m.tune) for m in built.values()}
    if len(tuned) != 1:
      raise ValueError(f"method {name!r} is tuned on some shapes only")
    if not tuned.pop():
      per = {s: Result(m.lr, [], _family_population(
          tasks[s], m, s.num_steps, None, seeds, ("val", "test"), quiet),
                       tuple(seeds)) for s, m in built.items()}
      out[name] = FamilyResult(per, per, None, {s: {} for s in shapes})
    else:
      val, best, fam = _tune_family(shapes, tasks, built, protocol, quiet)
      per, per_fam = {}, {}
      for s in shapes:
        ks = list(dict.fromkeys((best[s], fam)))
        hist = _family_population(
            tasks[s], built[s], s.num_steps,
            [protocol.rate(k) for k in ks for _ in seeds], seeds * len(ks),
            ("val", "test"), quiet)
        vals = [val[s][k] for k in sorted(val[s])]
        n = len(seeds)
        per[s] = Result(protocol.rate(best[s]), vals,
                        hist.select(slice(0, n)), tuple(seeds))
        per_fam[s] = per[s] if len(ks) == 1 else Result(
            protocol.rate(fam), vals, hist.select(slice(n, 2 * n)),
            tuple(seeds))
      out[name] = FamilyResult(
          per, per_fam, protocol.rate(fam),
          {s: {protocol.rate(k): val[s][k] for k in sorted(val[s])}
           for s in shapes})
    if log is not None:
      r = out[name]
      for s in shapes:
        acc_i = 100 * _final_acc(r.per_instance[s].hist, "test").mean()
        acc_f = 100 * _final_acc(r.per_family[s].hist, "test").mean()
        rates = ("" if r.family_lr is None else
                 f"lr {r.per_instance[s].lr:.3g} / family {r.family_lr:.3g}, ")
        log(f"  {name} on {s.name}: {rates}test acc {acc_i:.2f}% / "
            f"{acc_f:.2f}% (instance / family) over {len(seeds)} seeds")
      log(f"  {name}: {time.perf_counter() - t0:.0f}s")
  return out


def _paired(a, b) -> dict[str, float]:
  if np.size(a) == 0:
    nan = float("nan")
    return {"mean": nan, "ci_low": nan, "ci_high": nan, "n": 0}
  return paired_difference(a, b)


def family_differences(results: dict[str, FamilyResult],
                       a: tuple[str, str], b: tuple[str, str]) -> dict:
  """Paired test differences ``a - b`` per shape and pooled over shapes.

  ``a`` and ``b`` are ``(method name, "instance" | "family")``: which tuned
  rate's test runs to use. Runs pair by (shape, seed); the pooled interval
  concatenates the pairs of every shape. A run that diverged counts as test
  accuracy 0, and its pair is dropped from the loss interval only (its
  final loss is NaN); ``n`` says how many pairs each interval holds.

  Returns:
    ``{"per_instance": {shape.name: {"acc": d, "loss": d}}, "pooled":
    {"acc": d, "loss": d}}`` with ``d`` as :func:`paired_difference`
    returns; ``"acc"`` is in accuracy points (x100), ``"loss"`` is the final
    test loss.
  """
  def side(which):
    name, kind = which
    if kind not in ("instance", "family"):
      raise ValueError(f"tuning must be 'instance' or 'family', got {kind!r}")
    r = results[name]
    return r.per_instance if kind == "instance" else r.per_family

  ra, rb = side(a), side(b)
  if list(ra) != list(rb):
    raise ValueError(f"{a[0]!r} and {b[0]!r} ran on different shapes")
  per, pooled = {}, {"acc": ([], []), "loss": ([], [])}
  for shape, x in ra.items():
    y = rb[shape]
    try:
      order = [y.seeds.index(s) for s in x.seeds]
    except ValueError:
      raise ValueError(f"{a[0]!r} and {b[0]!r} have different test seeds on "
                       f"{shape.name}: {x.seeds} vs {y.seeds}") from None
    hx, hy = x.hist, y.hist.select(np.asarray(order))
    acc = (100 * _final_acc(hx, "test"), 100 * _final_acc(hy, "test"))
    lx = np.asarray(hx.final("test_loss"), np.float64)
    ly = np.asarray(hy.final("test_loss"), np.float64)
    keep = (np.asarray(hx.finite()) & np.asarray(hy.finite())
            & np.isfinite(lx) & np.isfinite(ly))
    loss = (lx[keep], ly[keep])
    per[shape.name] = {"acc": _paired(*acc), "loss": _paired(*loss)}
    for key, (u, v) in (("acc", acc), ("loss", loss)):
      pooled[key][0].append(u)
      pooled[key][1].append(v)
  return {"per_instance": per,
          "pooled": {k: _paired(np.concatenate(u), np.concatenate(v))
                     for k, (u, v) in pooled.items()}}

