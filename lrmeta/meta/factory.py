"""Meta-gradient estimators by name.

:func:`make_estimator` maps the names in :data:`ESTIMATORS` (the values of
an experiment's ``meta.estimator``) to the estimators of
:mod:`lrmeta.meta.estimators`:

* ``"truncated"``: :class:`~lrmeta.meta.estimators.TruncatedBackprop` over
  windows of ``window`` steps;
* ``"unrolled"``: :func:`~lrmeta.meta.estimators.unrolled`, backprop through
  whole runs of ``horizon`` steps;
* ``"lookahead"``: :func:`~lrmeta.meta.estimators.one_step_lookahead`, one
  differentiable step every ``every`` steps (Shu et al., MLR-SNet, TPAMI
  2022);
* ``"es"``: :class:`~lrmeta.meta.estimators.AntitheticES` (Salimans et al.,
  2017);
* ``"pes"``: :class:`~lrmeta.meta.estimators.PES` (Vicol, Metz,
  Sohl-Dickstein, ICML 2021).
"""

from __future__ import annotations

from lrmeta.meta.estimators import (PES, AntitheticES, Estimator,
                                    OnlineLookahead, TruncatedBackprop,
                                    one_step_lookahead, unrolled)
from lrmeta.meta.problem import InnerProblem

ESTIMATORS = ("truncated", "unrolled", "lookahead", "online_lookahead", "es",
              "pes")


def make_estimator(name: str, problem: InnerProblem, *, horizon: int,
                   window: int | None = None, num_tasks: int = 1,
                   every: int = 1, num_pairs: int = 8, sigma: float = 0.01,
                   steps_per_epoch: int | None = None) -> Estimator:
  """The estimator called ``name`` on ``problem``.

  Args:
    name: one of :data:`ESTIMATORS`.
    problem: the inner problem the estimator unrolls.
    horizon: inner steps per episode.
    window: steps per truncation for ``"truncated"``, ``"es"`` and ``"pes"``
      (``None``: ``horizon``, whole runs); ``"unrolled"`` and
      ``"lookahead"`` ignore it.
    num_tasks: inner runs in the vmapped population.
    every: inner steps per meta-update of ``"lookahead"`` and
      ``"online_lookahead"`` (ignored by the others).
    num_pairs: antithetic pairs of ``"es"`` and ``"pes"``.
    sigma: perturbation scale of ``"es"`` and ``"pes"``.
    steps_per_epoch: ``"online_lookahead"`` counts ``every`` within epochs
      of this many steps (the authors' code; ``None``: along the run).

  Returns:
    An :class:`~lrmeta.meta.estimators.Estimator`.

  Raises:
    ValueError: ``name`` is not in :data:`ESTIMATORS`.
  """
  if name == "truncated":
    return TruncatedBackprop(problem, horizon=horizon, window=window,
                             num_tasks=num_tasks)
  if name == "unrolled":
    return unrolled(problem, horizon, num_tasks=num_tasks)
  if name == "lookahead":
    return one_step_lookahead(problem, horizon, every=every,
                              num_tasks=num_tasks)
  if name == "online_lookahead":
    return OnlineLookahead(problem, horizon=horizon, num_tasks=num_tasks,
                           every=every, steps_per_epoch=steps_per_epoch)
  if name == "es":
    return AntitheticES(problem, horizon=horizon, window=window,
                        num_tasks=num_tasks, num_pairs=num_pairs, sigma=sigma)
  if name == "pes":
    return PES(problem, horizon=horizon, window=window, num_tasks=num_tasks,
               num_pairs=num_pairs, sigma=sigma)
  raise ValueError(f"unknown estimator {name!r}; known estimators: "
                   f"{', '.join(ESTIMATORS)}")


__all__ = ["ESTIMATORS", "make_estimator"]
