"""The held-out protocol of a task family, as the jobs run it.

Controllers and schedules are judged on every held-out shape of the family
(:func:`judge`, :func:`lrmeta.protocol.compare_family`) with paired test
seeds from :data:`lrmeta.tasks.family.HELD_OUT_SEED_BASE` and tuning seeds
above them, against the baselines of
:data:`lrmeta.protocol.DEFAULT_BASELINES` whose peak rate is tuned per
instance and once for the family; the verdict of a learned controller is
against the best baseline of each tuning (:func:`versus_baselines`).
Saved-form controllers become protocol methods through
:func:`controller_at` and its family forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lrmeta import learned
from lrmeta.experiments.family_loop import build_family
from lrmeta.protocol import (DEFAULT_BASELINES, FamilyProtocol, Method,
                             compare_family, differences, family_baselines,
                             fixed, interval, sqrt2_grid, verdict,
                             versus_best)
from lrmeta.protocol.scoring import final_scores
from lrmeta.tasks.family import (HELD_OUT_SEED_BASE, Family, Instance,
                                 instance_task)

# Held-out runs: test seeds from HELD_OUT_SEED_BASE, tuning seeds above them.
TUNE_SEED_OFFSET = 1_000


def heldout_shapes(family: Family) -> tuple[Instance, ...]:
  """The distinct shapes of the family's held-out instances."""
  return tuple(dict.fromkeys(i.shape for i in family.held_out()))


def protocol(cfg) -> FamilyProtocol:
  """The held-out protocol of ``cfg.test``."""
  t = cfg.test
  return FamilyProtocol(
      sqrt2_grid(t.grid_low, t.grid_points),
      tuple(HELD_OUT_SEED_BASE + TUNE_SEED_OFFSET + i
            for i in range(t.num_tune_seeds)),
      tuple(HELD_OUT_SEED_BASE + i for i in range(t.num_seeds)))


def controller_at(config: dict, theta: Any, steps: int, *,
                  tune: bool = False) -> Method:
  """A saved-form controller for a budget of ``steps``: as saved, or with its
  base rate (``learning_rate=``) left for the protocol to tune."""
  kind = learned.get(config["controller"])
  signals = kind.signals(config, steps)
  if not tune:
    return fixed(kind.optimizer(theta, config, steps), signals)
  return Method(lambda lr: kind.optimizer(theta, config, steps,
                                          learning_rate=lr), signals)


def controller_method(config: dict, theta: Any):
  """A saved-form controller as a fixed family method (built per shape's
  budget)."""
  return lambda shape: controller_at(config, theta, shape.num_steps)


def tuned_method(make_optimizer):
  """A family method whose base rate the protocol tunes
  (``make_optimizer(lr)``, the same for every shape)."""
  return lambda shape: Method(make_optimizer)


def tuned_controller_method(config: dict, theta: Any):
  """A saved-form controller whose base rate (``learning_rate=``) the
  protocol tunes, built per shape's budget."""
  return lambda shape: controller_at(config, theta, shape.num_steps,
                                     tune=True)


def accuracy_points(result) -> np.ndarray:
  """Final test accuracy per seed in points; a diverged run counts as 0
  (:func:`lrmeta.protocol.final_scores`)."""
  return 100 * final_scores(result.hist, "test")


def judge(cfg, methods: dict, quiet: bool = False):
  """Baselines plus ``methods`` on the held-out shapes; returns
  ``compare_family``'s results."""
  shapes = heldout_shapes(build_family(cfg))
  everything = {**family_baselines(cfg.test.momentum), **methods}
  print(f"  {len(shapes)} held-out shapes x {cfg.test.num_seeds} seeds; "
        f"{len(everything)} methods", flush=True)
  return compare_family(shapes, everything, protocol(cfg),
                        task_fn=instance_task, quiet=quiet,
                        log=lambda s: print(f"  [held-out] {s}", flush=True))


def versus_cosine(results, name: str) -> dict[str, dict[str, float]]:
  """Pooled test-accuracy differences (points) of ``name`` against cosine
  tuned once for the family and per instance, each with ``name`` tuned the
  same way (the same result twice for a method without a tuned rate)."""
  return {f"heldout_vs_{how}_cosine": interval(differences(
      results, (name, how), ("cosine", how))["pooled"]["acc"])
          for how in ("family", "instance")}


def versus_baselines(results, name: str,
                     baselines: Sequence[str] = DEFAULT_BASELINES
                     ) -> dict[str, dict[str, Any]]:
  """``name`` against the best baseline tuned once for the family and per
  instance (:func:`lrmeta.protocol.versus_best`, pooled over (shape, seed)
  pairs): the verdict of a learned controller."""
  return {f"heldout_vs_{how}_best": versus_best(results, name, baselines, how)
          for how in ("family", "instance")}


def versus_each(results, name: str, baselines: Sequence[str],
                how: str = "family") -> dict[str, dict[str, Any]]:
  """``name`` minus each of ``baselines`` present in ``results``, both tuned
  ``how``: the pooled paired test-accuracy interval (points, (shape, seed)
  pairs, :func:`lrmeta.protocol.differences`) with its ``n`` and verdict,
  keyed by baseline."""
  out = {}
  for b in baselines:
    if b in results and b != name:
      d = differences(results, (name, how), (b, how))["pooled"]["acc"]
      out[b] = {**interval(d), "n": int(d["n"]), "verdict": verdict(d)}
  return out


def per_seed_accuracies(results) -> dict[str, dict[str, Any]]:
  """Raw held-out test accuracies (points, a diverged run 0) of every
  method and tuning: ``{method: {"family_lr", "instance" | "family":
  {shape: {"lr", "seeds", "test_acc"}}}}``, the pairs every interval
  reads."""
  def side(per):
    return {getattr(s, "name", str(s)): {
        "lr": r.lr, "seeds": [int(x) for x in r.seeds],
        "test_acc": [float(x) for x in accuracy_points(r)]}
            for s, r in per.items()}
  return {n: {"family_lr": r.family_lr, "instance": side(r.per_instance),
              "family": side(r.per_family)} for n, r in results.items()}


__all__ = ["TUNE_SEED_OFFSET", "accuracy_points", "controller_at",
           "controller_method", "heldout_shapes", "judge", "protocol",
           "per_seed_accuracies", "tuned_controller_method", "tuned_method",
           "versus_baselines", "versus_cosine", "versus_each"]
