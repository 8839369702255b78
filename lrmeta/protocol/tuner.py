"""The one tuner: a rate grid that widens at its edges, per shape and pooled.

A method's base rate is tuned on validation: every rate of ``lr_grid`` trains
on the tune seeds, a rate's score on a shape is the mean final validation
score over them (a diverged run scores the worst value,
:func:`lrmeta.protocol.scoring.final_scores`). Tuning runs two ways at once:

* **per shape** (per instance): each shape keeps the rate with its best
  score; while that rate sits on an edge of the rates evaluated for the
  shape, the rate one grid step beyond the edge is evaluated (at most
  ``max_widen`` times per shape);
* **pooled** (per family): one rate for every shape, the one with the best
  mean score over shapes among the rates every shape has evaluated; while it
  sits on an edge, the next rate beyond it runs on every shape lacking it
  (at most ``max_widen`` times in all).

The two alternate until neither widens, so each chosen rate is the argmax of
what was evaluated and no (shape, rate) trains twice. Ties go to the lower
rate. A single task is a family of one shape: both ways then pick the same
rate. Beyond the grid the rates continue geometrically with the ratio of the
grid's edge steps (sqrt(2) on a :func:`sqrt2_grid`).

Tune seeds never equal test seeds (:func:`check_seeds`): a tuned rate
judged on the runs that chose it would be scored on its own selection.
"""

from __future__ import annotations

import math
from typing import Callable, Hashable, Sequence

import numpy as np

SQRT2 = math.sqrt(2.0)
MIN_GRID = 8

# (shape, rate indices) -> mean validation score per index, higher better.
Evaluate = Callable[[Hashable, list[int]], Sequence[float]]


def sqrt2_grid(low: float, n: int = MIN_GRID) -> tuple[float, ...]:
  """``n`` rates ``low * sqrt(2)**k``, ``k = 0 .. n-1``."""
  return tuple(float(low * SQRT2**k) for k in range(n))


def check_seeds(tune_seeds: Sequence[int], test_seeds: Sequence[int],
                tuned: bool = True) -> None:
  """Raises ``ValueError`` when there are no test seeds, or when a protocol
  that tunes (``tuned``) has no tune seeds or shares a seed between tuning
  and test."""
  if not test_seeds:
    raise ValueError("test_seeds is empty")
  if not tuned:
    return
  if not tune_seeds:
    raise ValueError("tune_seeds is empty but the protocol tunes rates")
  shared = sorted(set(int(s) for s in tune_seeds)
                  & set(int(s) for s in test_seeds))
  if shared:
    raise ValueError(f"tune_seeds and test_seeds share {shared}: a rate "
                     f"tuned on its test runs would be judged on its own "
                     f"selection; use disjoint seeds (e.g. "
                     f"lrmeta.protocol.disjoint_tune_seeds)")


def disjoint_tune_seeds(test_seeds: Sequence[int], n: int | None = None,
                        offset: int = 1_000) -> tuple[int, ...]:
  """``n`` (default ``len(test_seeds)``) tune seeds ``max(test) + offset +
  i``, disjoint from ``test_seeds``."""
  n = len(test_seeds) if n is None else n
  start = max(int(s) for s in test_seeds) + offset
  return tuple(start + i for i in range(n))


def grid_rate(grid: Sequence[float], k: int) -> float:
  """Rate ``k`` of ``grid`` extended both ways (``k < 0`` below it,
  ``k >= len(grid)`` above it) by the ratio of its edge steps."""
  n = len(grid)
  if 0 <= k < n:
    return float(grid[k])
  if n < 2:
    raise ValueError(f"a grid of {n} rate(s) cannot widen")
  if k < 0:
    return float(grid[0] * (grid[0] / grid[1])**-k)
  return float(grid[-1] * (grid[-1] / grid[-2])**(k - n + 1))


def best_index(scores: Sequence[float]) -> int:
  """Index of the best score (NaN counts as worst; ties: the first)."""
  s = np.asarray(scores, np.float64)
  return int(np.argmax(np.where(np.isnan(s), -np.inf, s)))


def argmax_rate(scores: dict[int, float]) -> int:
  """The rate index with the best score."""
  ks = sorted(scores)
  return ks[best_index([scores[k] for k in ks])]


def beyond_edge(scores: dict[int, float]) -> int | None:
  """The index one step past the edge the best score sits on, or ``None``
  when it is inside."""
  ks = sorted(scores)
  best = argmax_rate(scores)
  if best == ks[0]:
    return best - 1
  if best == ks[-1]:
    return best + 1
  return None


def pooled_scores(val: dict[Hashable, dict[int, float]]) -> dict[int, float]:
  """Mean over shapes of the validation score, on the rates every shape
  has evaluated."""
  common = set.intersection(*(set(v) for v in val.values()))
  return {k: float(np.mean([v[k] for v in val.values()])) for k in common}


def tune(shapes: Sequence[Hashable], evaluate: Evaluate, grid_size: int,
         max_widen: int):
  """Per-shape and pooled tuning with widening (module docstring).

  Args:
    shapes: the shapes (hashable keys).
    evaluate: scores rate indices on a shape (higher better).
    grid_size: the grid's rates are indices ``0 .. grid_size - 1``.
    max_widen: widening steps allowed (0: never; also 0 for a grid of one
      rate).

  Returns:
    ``(val, per_shape, pooled)``: ``{shape: {index: score}}``, the
    per-shape indices and the pooled index (a grid of one rate is chosen
    without a run: ``val`` is empty).
  """
  if grid_size == 1:  # nothing to choose between, nothing to widen
    return {s: {} for s in shapes}, {s: 0 for s in shapes}, 0
  val: dict[Hashable, dict[int, float]] = {s: {} for s in shapes}

  def run(shape, ks):
    val[shape].update({k: float(a) for k, a in zip(ks, evaluate(shape, ks))})

  for shape in shapes:
    run(shape, list(range(grid_size)))
  widen = max_widen if grid_size > 1 else 0
  left, pooled_left = {s: widen for s in shapes}, widen
  while True:
    todo: dict[Hashable, list[int]] = {}
    for shape in shapes:
      k = beyond_edge(val[shape]) if left[shape] else None
      if k is not None:
        todo[shape] = [k]
        left[shape] -= 1
    k = beyond_edge(pooled_scores(val)) if pooled_left else None
    if k is not None:
      pooled_left -= 1
      for shape in shapes:
        if k not in val[shape] and k not in todo.get(shape, []):
          todo.setdefault(shape, []).append(k)
    if not todo:
      break
    for shape, ks in todo.items():
      run(shape, ks)
  return (val, {s: argmax_rate(val[s]) for s in shapes},
          argmax_rate(pooled_scores(val)))
