"""The one paired statistic, and verdicts against the best baseline.

Every method of a comparison runs on the same test seeds, so two methods'
scores pair by seed on a single task and by (shape, seed) on a family: the
difference is the mean of the paired differences with a Student-t interval
(:func:`paired_difference`), pooled over every (shape, seed) pair of a family
(:func:`differences`). A verdict reads the interval: ``"better"`` when it lies
above 0, ``"worse"`` when below, else ``"tie"``. A learned controller's
verdict is against the *best* baseline (:func:`versus_best`): the baseline
with the best mean test score, tuned the same way (per instance or per
family). The choice is made on the test runs, which favours the baselines.
Scores follow the diverged-run rule (:mod:`lrmeta.protocol.scoring`);
accuracy differences are in points (x100).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.stats

from lrmeta.protocol.scoring import oriented

TUNINGS = ("instance", "family")


def paired_difference(a, b, confidence: float = 0.95) -> dict[str, float]:
  """Mean of ``a - b`` over paired seeds and its Student-t interval.

  Returns:
    ``{"mean", "ci_low", "ci_high", "n"}`` (the interval is NaN with fewer
    than two pairs; everything NaN with none).
  """
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  n = d.size
  if n == 0:
    nan = float("nan")
    return {"mean": nan, "ci_low": nan, "ci_high": nan, "n": 0}
  mean = float(d.mean())
  if n < 2:
    return {"mean": mean, "ci_low": float("nan"), "ci_high": float("nan"),
            "n": n}
  half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1) *
               d.std(ddof=1) / np.sqrt(n))
  return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def verdict(d: dict[str, float]) -> str:
  """``"better"`` / ``"worse"`` when the interval of ``d`` (a
  :func:`paired_difference`) excludes 0 above / below, else ``"tie"``."""
  if d["ci_low"] > 0:
    return "better"
  if d["ci_high"] < 0:
    return "worse"
  return "tie"


def interval(d: dict) -> dict[str, float]:
  """``{"mean", "ci_low", "ci_high"}`` of a paired difference."""
  return {k: float(d[k]) for k in ("mean", "ci_low", "ci_high")}


def _points(r) -> np.ndarray:
  """Test scores of a Result, x100 for accuracy, higher better."""
  scale = 100.0 if r.metric == "accuracy" else 1.0
  return scale * oriented(r.scores("test"), r.maximize)


def _side(results: dict, which) -> dict:
  """``shape -> Result`` of ``which``: a method name (single-task results:
  one shape) or ``(name, "instance" | "family")`` (family results)."""
  if isinstance(which, str):
    return {"task": results[which]}
  name, kind = which
  if kind not in TUNINGS:
    raise ValueError(f"tuning must be 'instance' or 'family', got {kind!r}")
  r = results[name]
  return r.per_instance if kind == "instance" else r.per_family


def _pairs(x, y, where: str):
  """Scores and final test losses of ``x`` and ``y`` paired by seed; a
  pair with a diverged run or a NaN loss is left out of the losses."""
  try:
    order = np.asarray([y.seeds.index(s) for s in x.seeds])
  except ValueError:
    raise ValueError(f"different test seeds on {where}: {x.seeds} vs "
                     f"{y.seeds}") from None
  hy = y.hist.select(order)
  sx, sy = _points(x), _points(y)[order]
  lx = np.asarray(x.hist.final("test_loss"), np.float64)
  ly = np.asarray(hy.final("test_loss"), np.float64)
  keep = (np.asarray(x.hist.finite()) & np.asarray(hy.finite())
          & np.isfinite(lx) & np.isfinite(ly))
  return (sx, sy), (lx[keep], ly[keep])


def differences(results: dict, a, b) -> dict:
  """Paired test differences ``a - b`` per shape and pooled over shapes.

  ``a`` and ``b`` are method names of :func:`~lrmeta.protocol.compare`
  results, or ``(name, "instance" | "family")`` of
  :func:`~lrmeta.protocol.compare_family` results: which tuned rate's test
  runs to use. Runs pair by (shape, seed); the pooled interval concatenates
  the pairs of every shape. A diverged run scores the worst value (accuracy
  0), and its pair is dropped from the loss interval only (its final loss
  is NaN); ``n`` says how many pairs each interval holds.

  Returns:
    ``{"per_instance": {shape name: {"acc": d, "loss": d}}, "pooled":
    {"acc": d, "loss": d}}`` with ``d`` as :func:`paired_difference`
    returns; ``"acc"`` is the judging score (accuracy in points),
    ``"loss"`` the final test loss.
  """
  ra, rb = _side(results, a), _side(results, b)
  if list(ra) != list(rb):
    raise ValueError(f"{a!r} and {b!r} ran on different shapes")
  per, pooled = {}, {"acc": ([], []), "loss": ([], [])}
  for shape, x in ra.items():
    name = getattr(shape, "name", str(shape))
    acc, loss = _pairs(x, rb[shape], f"{name} ({a!r} vs {b!r})")
    per[name] = {"acc": paired_difference(*acc),
                 "loss": paired_difference(*loss)}
    for key, (u, v) in (("acc", acc), ("loss", loss)):
      pooled[key][0].append(u)
      pooled[key][1].append(v)
  return {"per_instance": per,
          "pooled": {k: paired_difference(np.concatenate(u), np.concatenate(v))
                     for k, (u, v) in pooled.items()}}


def family_differences(results: dict, a: tuple[str, str],
                       b: tuple[str, str]) -> dict:
  """:func:`differences` of two ``(name, tuning)`` family sides."""
  return differences(results, a, b)


def mean_score(results: dict, which) -> float:
  """Mean test score of a side, pooled over its shapes and seeds."""
  return float(np.mean(np.concatenate([_points(r) for r in
                                       _side(results, which).values()])))


def best_baseline(results: dict, baselines: Sequence[str] = (),
                  how: str | None = None, exclude: Sequence[str] = ()) -> str:
  """The baseline with the best mean test score: among ``baselines`` (or
  every method not in ``exclude``), tuned ``how`` on a family."""
  names = [n for n in (baselines or results) if n in results
           and n not in exclude]
  if not names:
    raise ValueError("no baseline to compare with")
  scores = {n: mean_score(results, n if how is None else (n, how))
            for n in names}
  return max(scores, key=scores.get)


def versus_best(results: dict, name: str, baselines: Sequence[str],
                how: str | None = None) -> dict[str, Any]:
  """``name`` against the best of ``baselines`` (tuned ``how`` on a family,
  ``name`` tuned the same way): ``{"baseline", "mean", "ci_low",
  "ci_high", "n", "verdict"}``, pooled over (shape, seed) pairs."""
  best = best_baseline(results, baselines, how)
  side = (lambda n: n) if how is None else (lambda n: (n, how))
  d = differences(results, side(name), side(best))["pooled"]["acc"]
  return {"baseline": best, **interval(d), "n": int(d["n"]),
          "verdict": verdict(d)}
