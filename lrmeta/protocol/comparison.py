"""Tune each method's base rate on validation, test it on fresh paired seeds.

One path for a single task and for a family of shapes (a single task is a
family of one). Every method is tuned by :mod:`lrmeta.protocol.tuner` (its
rate per shape and pooled over shapes, on ``tune_seeds``), then trained on
``test_seeds``, the same for every method and shape, so differences pair by
(shape, seed) (:mod:`lrmeta.protocol.stats`). A method with ``tune=False``
trains the test seeds at ``method.lr`` once per shape. A diverged run scores
the worst value in tuning and in test (:mod:`lrmeta.protocol.scoring`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from lrmeta.protocol import tuner
from lrmeta.protocol.executors import EXECUTORS, make_executor
from lrmeta.protocol.methods import Method
from lrmeta.protocol.scoring import final_scores, metric_of, oriented
from lrmeta.train import History


@dataclasses.dataclass(frozen=True)
class Protocol:
  """One task: budget, grid, seeds, evaluation and executor.

  ``lr_grid`` may be empty (nothing tuned; ``tune_seeds`` unused); otherwise
  its rates increase and it widens at its edges by its edge ratio
  (:func:`lrmeta.protocol.tuner.grid_rate`), at most ``max_widen`` times.
  Tune and test seeds are disjoint when the grid is not empty.
  """

  steps: int
  lr_grid: tuple[float, ...]
  tune_seeds: tuple[int, ...]
  test_seeds: tuple[int, ...]
  eval_every: int = 100
  num_evals: int = 4
  eval_examples: int | None = None
  executor: str = "population"
  max_widen: int = 4

  def __post_init__(self):
    if self.executor not in EXECUTORS:
      raise ValueError(f"executor must be one of {EXECUTORS}, got "
                       f"{self.executor!r}")
    grid = tuple(float(r) for r in self.lr_grid)
    if grid and not (all(math.isfinite(r) and r > 0 for r in grid)
                     and all(a < b for a, b in zip(grid, grid[1:]))):
      raise ValueError(f"lr_grid must hold increasing positive rates, got "
                       f"{grid}")
    object.__setattr__(self, "lr_grid", grid)
    tuner.check_seeds(self.tune_seeds, self.test_seeds, tuned=bool(grid))


@dataclasses.dataclass(frozen=True)
class FamilyProtocol:
  """Grid, seeds and widening of :func:`compare_family`.

  Attributes:
    lr_grid: at least 8 increasing rates, consecutive ratio sqrt(2)
      (:func:`lrmeta.protocol.tuner.sqrt2_grid`).
    tune_seeds: run seeds of the tuning runs (scored on validation).
    test_seeds: run seeds of the test runs, the same for every method and
      shape so that differences pair by (shape, seed); at least two (ten or
      more for a reported table); disjoint from ``tune_seeds``.
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
    for name in ("tune_seeds", "test_seeds"):
      object.__setattr__(self, name, tuple(int(s) for s in getattr(self,
                                                                   name)))
    if len(grid) < tuner.MIN_GRID or not all(math.isfinite(r) and r > 0
                                             for r in grid):
      raise ValueError(f"lr_grid needs at least {tuner.MIN_GRID} positive "
                       f"rates, got {grid}")
    ratios = np.asarray(grid[1:]) / np.asarray(grid[:-1])
    if not np.allclose(ratios, tuner.SQRT2, rtol=1e-6, atol=0.0):
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
    tuner.check_seeds(self.tune_seeds, self.test_seeds)

  def rate(self, k: int) -> float:
    """Rate ``k`` of the grid extended both ways by factors sqrt(2)."""
    return tuner.grid_rate(self.lr_grid, k)


@dataclasses.dataclass
class Result:
  """A method's outcome on one task (shape): its base rate (``None`` when it
  has none to tune and no fixed value), the mean validation score per
  evaluated rate, rates increasing (empty when not tuned), the test seeds
  and their :class:`~lrmeta.train.History` (members in the order of
  ``seeds``), and the metric that judges it."""

  lr: float | None
  grid_val_acc: list[float]
  hist: History
  seeds: tuple[int, ...]
  metric: str = "accuracy"
  maximize: bool = True

  def scores(self, split: str = "test") -> np.ndarray:
    """Final score per seed, a diverged run at the worst value."""
    return final_scores(self.hist, split, self.metric, self.maximize)


@dataclasses.dataclass
class FamilyResult:
  """One method on every shape of :func:`compare_family`.

  Attributes:
    per_instance: shape -> test result at that shape's own tuned rate.
    per_family: shape -> test result at :attr:`family_lr` (for a method
      without tuning, the same dict as ``per_instance``).
    family_lr: the one rate tuned for all shapes (``None`` when not tuned).
    grid_val_acc: shape -> {evaluated rate: mean final validation score
      over the tune seeds}, rates increasing (empty when not tuned).
  """

  per_instance: dict[Any, Result]
  per_family: dict[Any, Result]
  family_lr: float | None
  grid_val_acc: dict[Any, dict[float, float]]


# A method for one shape; its budget ``shape.num_steps`` is known to it, so a
# schedule can decay over the run.
FamilyMethod = Callable[[Any], Method]


def _judge(shapes, tasks, steps, built: dict, rate, p, run) -> FamilyResult:
  """Tunes (when the methods ask) and tests one method on every shape."""
  test = list(p.test_seeds)
  meta = {s: metric_of(tasks[s]) for s in shapes}

  def result(s, lr, vals, hist):
    return Result(lr, vals, hist, tuple(test), *meta[s])

  tuned = {bool(m.tune) for m in built.values()}
  if len(tuned) != 1:
    raise ValueError("a method is tuned on some shapes only")
  if not tuned.pop() or not p.lr_grid:
    per = {s: result(s, m.lr, [], run(tasks[s], m, steps[s], None, test,
                                      ("val", "test")))
           for s, m in built.items()}
    return FamilyResult(per, per, None, {s: {} for s in shapes})
  seeds = list(p.tune_seeds)

  def evaluate(s, ks):
    hist = run(tasks[s], built[s], steps[s], [rate(k) for k in ks
                                              for _ in seeds],
               seeds * len(ks), ("val",), tuning=True)
    v = oriented(final_scores(hist, "val", *meta[s]), meta[s][1])
    return v.reshape(len(ks), len(seeds)).mean(1)

  val, best, fam = tuner.tune(shapes, evaluate, len(p.lr_grid), p.max_widen)
  per, per_fam, n = {}, {}, len(test)
  for s in shapes:
    ks = list(dict.fromkeys((best[s], fam)))
    hist = run(tasks[s], built[s], steps[s],
               [rate(k) for k in ks for _ in test], test * len(ks),
               ("val", "test"))
    vals = [val[s][k] for k in sorted(val[s])]
    per[s] = result(s, rate(best[s]), vals, hist.select(slice(0, n)))
    per_fam[s] = per[s] if len(ks) == 1 else result(
        s, rate(fam), vals, hist.select(slice(n, 2 * n)))
  return FamilyResult(per, per_fam, rate(fam),
                      {s: {rate(k): val[s][k] for k in sorted(val[s])}
                       for s in shapes})


def compare(task, methods: dict[str, Method], protocol: Protocol, *,
            quiet: bool = False, log: Callable[[str], None] | None = None
            ) -> dict[str, Result]:
  """Runs the protocol for every method on one task (a family of one
  shape); returns ``name -> Result``. ``log`` receives one line per
  method."""
  p = protocol
  run = make_executor(p.executor, eval_every=p.eval_every,
                      num_evals=p.num_evals,
                      eval_examples=p.eval_examples or None, quiet=quiet)
  out = {}
  for name, method in methods.items():
    t0 = time.perf_counter()
    r = _judge(["task"], {"task": task}, {"task": p.steps},
               {"task": method}, lambda k: tuner.grid_rate(p.lr_grid, k), p,
               run).per_instance["task"]
    out[name] = r
    if log is not None:
      acc = 100 * r.scores()
      tune = (f"tuned lr {r.lr:g} (val acc over grid "
              f"{np.round(r.grid_val_acc, 4).tolist()}), "
              if r.grid_val_acc else "")
      log(f"  {name}: {tune}test acc {acc.mean():.2f}% over {acc.size} "
          f"seeds [{time.perf_counter() - t0:.0f}s]")
  return out


def shape_key(shape) -> Hashable:
  """A shape's key in results: ``shape.shape`` where it has one (a family
  instance keyed without its run seed), else the shape itself."""
  return getattr(shape, "shape", shape)


def shape_name(shape) -> str:
  return getattr(shape, "name", str(shape))


def compare_family(shapes: Sequence[Any], methods: dict[str, FamilyMethod],
                   protocol: FamilyProtocol, *,
                   task_fn: Callable[[Any], Any] | None = None,
                   quiet: bool = False,
                   log: Callable[[str], None] | None = None
                   ) -> dict[str, FamilyResult]:
  """Compares methods over the shapes of a task family.

  A family is a sequence of shapes plus ``task_fn(shape) -> task``. Every
  run of a shape trains ``task_fn(shape)`` for ``shape.num_steps`` steps
  and is evaluated once, at the end. A tuned method's rate is tuned per
  shape and for the family (:func:`lrmeta.protocol.tuner.tune`); each shape
  then trains ``test_seeds`` at its own rate and at the family rate (one
  population; one set of runs when the rates coincide). A method without
  tuning trains ``test_seeds`` at ``method.lr`` once per shape; its
  per-family result is its per-instance result.

  Args:
    shapes: distinct shapes (keyed by :func:`shape_key`).
    methods: name -> :data:`FamilyMethod`.
    protocol: grid, seeds, widening.
    task_fn: shape -> task (default: the pooled-MLP family's
      :func:`lrmeta.tasks.family.instance_task`).
    quiet: no progress bars.
    log: receives one line per (method, shape) and each method's time.

  Returns:
    ``name -> FamilyResult``; per-shape results hold the test runs in the
    order of ``protocol.test_seeds``.
  """
  if task_fn is None:
    from lrmeta.tasks.family import instance_task  # pylint: disable=import-outside-toplevel
    task_fn = instance_task
  keys = [shape_key(s) for s in shapes]
  if not keys or len(set(keys)) != len(keys):
    raise ValueError(f"compare_family needs distinct shapes, got "
                     f"{[shape_name(s) for s in keys]}")
  tasks = {s: task_fn(s) for s in keys}
  steps = {s: int(s.num_steps) for s in keys}
  run = make_executor("population", quiet=quiet)
  out = {}
  for name, factory in methods.items():
    t0 = time.perf_counter()
    try:
      out[name] = _judge(keys, tasks, steps, {s: factory(s) for s in keys},
                         protocol.rate, protocol, run)
    except ValueError as e:
      raise ValueError(f"method {name!r}: {e}") from None
    if log is not None:
      _log_family(log, name, out[name], len(protocol.test_seeds))
      log(f"  {name}: {time.perf_counter() - t0:.0f}s")
  return out


def _log_family(log, name: str, r: FamilyResult, num_seeds: int) -> None:
  for s in r.per_instance:
    acc_i = 100 * r.per_instance[s].scores().mean()
    acc_f = 100 * r.per_family[s].scores().mean()
    rates = ("" if r.family_lr is None else
             f"lr {r.per_instance[s].lr:.3g} / family {r.family_lr:.3g}, ")
    log(f"  {name} on {shape_name(s)}: {rates}test acc {acc_i:.2f}% / "
        f"{acc_f:.2f}% (instance / family) over {num_seeds} seeds")
