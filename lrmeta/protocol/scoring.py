"""What a run scores, and the one rule for a run that diverged.

A task is judged by one entry of its ``evaluate()`` dict: ``task.metric``
(default ``"accuracy"``), higher better unless ``task.maximize`` is false.
:func:`score_key` names that entry in a :class:`~lrmeta.train.History`
(``"<split>_acc"`` for accuracy). :func:`final_scores` reads every run's final
score; **a run whose loss or parameters went non-finite scores the worst
value** (accuracy 0), whatever its metric reads after the divergence (NaN
logits give chance-level accuracy, not NaN), and so does a NaN score. This one
rule holds in tuning and in test, on a single task and on a family.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lrmeta.tasks.protocol import DEFAULT_METRIC, maximizes
from lrmeta.tasks.protocol import metric_of as task_metric
from lrmeta.train import History, history_key


def metric_of(task: Any) -> tuple[str, bool]:
  """``(metric, maximize)`` of a task; one without those attributes is
  judged by accuracy, maximised."""
  return task_metric(task), maximizes(task)


def metric_key(metric: str, split: str) -> str:
  """The History key of ``metric`` on ``split``: ``"<split>_acc"`` for
  accuracy, ``"<split>_<metric>"`` otherwise."""
  return history_key(split, metric)


def score_key(task: Any, split: str) -> str:
  """The History key of ``task``'s judging metric on ``split``."""
  return metric_key(metric_of(task)[0], split)


def worst_value(metric: str, maximize: bool) -> float:
  """The score of a diverged run: 0 for accuracy, else the worst end of
  the metric's range (-inf maximised, +inf minimised)."""
  if metric == DEFAULT_METRIC:
    return 0.0
  return -np.inf if maximize else np.inf


def diverged_to_worst(values, finite, metric: str = DEFAULT_METRIC,
                      maximize: bool = True) -> np.ndarray:
  """The diverged-run rule: ``values`` (float64) with every run that did
  not stay ``finite``, or whose value is NaN, at :func:`worst_value`."""
  value = np.asarray(values, np.float64)
  ok = np.asarray(finite, bool) & ~np.isnan(value)
  return np.where(ok, value, worst_value(metric, maximize))


def final_scores(hist: History, split: str, metric: str = DEFAULT_METRIC,
                 maximize: bool = True) -> np.ndarray:
  """Final ``metric`` on ``split`` per run under the diverged-run rule
  (:func:`diverged_to_worst`)."""
  return diverged_to_worst(hist.final(metric_key(metric, split)),
                           hist.finite(), metric, maximize)


def oriented(scores: np.ndarray, maximize: bool = True) -> np.ndarray:
  """Scores turned so that higher is better (negated when minimised)."""
  return np.asarray(scores, np.float64) * (1.0 if maximize else -1.0)
