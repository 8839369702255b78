"""One protocol judges every method: methods and baselines, one tuner, one
rule for diverged runs, executors, one paired statistic and its verdicts.

* :mod:`~lrmeta.protocol.methods`: :class:`Method` (base rate -> optimizer),
  the default baselines (:data:`DEFAULT_BASELINES`: constant, step, cosine,
  warm-up + cosine, linear decay to zero, warm-up-stable-decay);
* :mod:`~lrmeta.protocol.scoring`: the judging metric of a task
  (:func:`score_key`) and the diverged-run rule (:func:`final_scores`: a
  run that went non-finite scores the worst value, accuracy 0);
* :mod:`~lrmeta.protocol.tuner`: the rate grid that widens at its edges,
  per shape and pooled over shapes; tune seeds never equal test seeds;
* :mod:`~lrmeta.protocol.executors`: population (vmapped) and sequential
  runs;
* :mod:`~lrmeta.protocol.comparison`: :func:`compare` (one task, a family of
  one shape) and :func:`compare_family` (a sequence of shapes plus
  ``task_fn``);
* :mod:`~lrmeta.protocol.stats`: :func:`paired_difference` (pooled over
  (shape, seed) pairs by :func:`differences`), :func:`verdict` and
  :func:`versus_best` (against the best of the baselines).
"""

from lrmeta.protocol.comparison import (FamilyMethod, FamilyProtocol,
                                     FamilyResult, Protocol, Result, compare,
                                     compare_family, shape_key, shape_name)
from lrmeta.protocol.executors import EXECUTORS, make_executor, seed_keys
from lrmeta.protocol.methods import (DEFAULT_BASELINES, Method,
                                     base_optimizer, baseline_methods,
                                     family_baselines, fixed, schedule_method)
from lrmeta.protocol.scoring import final_scores, score_key, worst_value
from lrmeta.protocol.stats import (best_baseline, differences,
                                   family_differences, interval,
                                   paired_difference, verdict, versus_best)
from lrmeta.protocol.tuner import (SQRT2, check_seeds, disjoint_tune_seeds,
                                   grid_rate, sqrt2_grid, tune)

__all__ = ["DEFAULT_BASELINES", "EXECUTORS", "FamilyMethod", "FamilyProtocol",
           "FamilyResult", "Method", "Protocol", "Result", "SQRT2",
           "base_optimizer", "baseline_methods", "best_baseline",
           "check_seeds", "compare", "compare_family", "differences",
           "disjoint_tune_seeds", "family_baselines", "family_differences",
           "final_scores", "fixed", "grid_rate", "interval", "make_executor",
           "paired_difference", "schedule_method", "score_key", "seed_keys",
           "shape_key", "shape_name", "sqrt2_grid", "tune", "verdict",
           "versus_best", "worst_value"]
