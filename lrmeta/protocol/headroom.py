"""Headroom: what choosing the hand schedule per task could win over one
schedule tuned for the whole family.

A fixed schedule shape learned for a whole family can at best match the best
fixed hand shape tuned for it; a controller that tells tasks apart can win
more only where the best shape differs between tasks. This module measures
that gap on a family with the protocol's own runs
(:func:`lrmeta.protocol.compare_family`):

* the **family choice**: among the hand schedules (:data:`HAND_SCHEDULES`:
  the default baselines plus their shape options, the decay fraction of WSD
  and a warm-up), each with its peak rate tuned once for the family, the
  one with the best mean validation score over the shapes at its family
  rate (:func:`family_choice`);
* the **per-instance oracle**: for each shape, the hand schedule with the
  best validation score at its own per-shape rate (:func:`instance_choice`);
* the **headroom**: oracle minus family choice on the test seeds, paired by
  (shape, seed), pooled and per shape (:func:`headroom`).

Both choices read the tuning runs only (``grid_val_acc``: validation scores
on the tune seeds), never the test runs they are judged on, so the oracle is
one a user could build, and the gap is not inflated by picking the luckiest
test scores. :func:`versus_hand` judges a learned controller the same way:
against the family choice (both tuned for the family) and against the
per-instance oracle (the controller's base rate tuned per instance), with
the fraction of the headroom it captures.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from lrmeta.protocol.comparison import FamilyResult, shape_name
from lrmeta.protocol.methods import DEFAULT_BASELINES, schedule_method
from lrmeta.protocol.stats import differences, interval

# The default baselines plus the shape options a user would try: WSD's decay
# fraction (the 0.2 default is bare "wsd"), and a 5 % warm-up before linear
# decay and before WSD.
HAND_SCHEDULES: tuple[str, ...] = DEFAULT_BASELINES + (
    "wsd(decay_fraction=0.1)", "wsd(decay_fraction=0.3)",
    "wsd(decay_fraction=0.5)", "linear(warmup_fraction=0.05)",
    "wsd(decay_fraction=0.3, warmup_fraction=0.05)")


def hand_methods(names: Sequence[str] = HAND_SCHEDULES, *,
                 optimizer: str = "sgd", momentum: float = 0.9,
                 weight_decay: float = 0.0
                 ) -> dict[str, Callable[[Any], Any]]:
  """``name -> family method``: each hand schedule over its shape's budget
  on ``optimizer`` (SGD with ``momentum``, or Adam), peak rate tuned."""
  def make(kind):
    return lambda shape: schedule_method(
        kind, shape.num_steps, optimizer=optimizer, momentum=momentum,
        weight_decay=weight_decay)
  return {kind: make(kind) for kind in names}


def widen_shapes(shapes: Sequence[Any], *, steps_scale: float = 1.0,
                 label_noise: float | None = None,
                 max_train: int | None = None) -> tuple[Any, ...]:
  """The shapes with longer budgets (``num_steps * steps_scale``), label
  noise and a training subset set (``None``: as they are)."""
  changes: dict[str, Any] = {}
  if label_noise is not None:
    changes["label_noise"] = float(label_noise)
  if max_train is not None:
    changes["max_train"] = int(max_train)
  return tuple(dataclasses.replace(
      s, num_steps=max(1, int(round(s.num_steps * steps_scale))), **changes)
      for s in shapes)


def _val(result: FamilyResult, shape: Hashable, how: str) -> float:
  """Mean validation score (tune seeds) of ``result`` on ``shape`` at its
  per-instance or family rate."""
  vals = result.grid_val_acc[shape]
  if not vals:
    raise ValueError("a method without a tuned rate has no validation "
                     "score to choose by")
  lr = (result.per_instance[shape].lr if how == "instance"
        else result.family_lr)
  return float(vals[lr])


def family_choice(results: dict[str, FamilyResult],
                  names: Sequence[str]) -> str:
  """The schedule whose family-tuned rate has the best mean validation
  score over the shapes (ties: the first of ``names``)."""
  scores = [np.mean([_val(results[n], s, "family")
                     for s in results[n].per_family]) for n in names]
  return names[int(np.argmax(scores))]


def instance_choice(results: dict[str, FamilyResult], names: Sequence[str],
                    on: str = "val") -> dict[Hashable, str]:
  """Per shape, the schedule with the best validation score at its own
  per-shape rate (ties: the first of ``names``). ``on="test"`` chooses by
  the mean test score instead: an oracle that has seen the runs it is
  judged on, so its gain is an upper bound (selection bias favours it)."""
  if on not in ("val", "test"):
    raise ValueError(f"on must be 'val' or 'test', got {on!r}")
  shapes = list(results[names[0]].per_instance)

  def score(n, s):
    if on == "test":
      return float(np.mean(results[n].per_instance[s].scores()))
    return _val(results[n], s, "instance")
  return {s: names[int(np.argmax([score(n, s) for n in names]))]
          for s in shapes}


def oracle_result(results: dict[str, FamilyResult],
                  choice: dict[Hashable, str]) -> FamilyResult:
  """A :class:`FamilyResult` holding, per shape, the per-instance runs of
  the schedule ``choice`` names for it."""
  per = {s: results[n].per_instance[s] for s, n in choice.items()}
  return FamilyResult(per, per, None, {s: {} for s in per})


ORACLE = "per-instance oracle"


def headroom(results: dict[str, FamilyResult],
             names: Sequence[str] = HAND_SCHEDULES, on: str = "val"
             ) -> dict[str, Any]:
  """Per-instance oracle minus the family choice among ``names``; the
  oracle chooses on validation (``on="test"``: on the test runs, an upper
  bound, :func:`instance_choice`).

  Returns:
    ``{"family_choice": name, "instance_choice": {shape name: name},
    "pooled": d, "per_instance": {shape name: d}}`` with ``d``
    :func:`lrmeta.protocol.paired_difference`'s dict of test accuracy in
    points, paired by (shape, seed).
  """
  names = [n for n in names if n in results]
  fam = family_choice(results, names)
  inst = instance_choice(results, names, on)
  both = {**results, ORACLE: oracle_result(results, inst)}
  d = differences(both, (ORACLE, "instance"), (fam, "family"))
  return {"family_choice": fam,
          "instance_choice": {shape_name(s): n for s, n in inst.items()},
          "pooled": d["pooled"]["acc"],
          "per_instance": {s: v["acc"] for s, v in d["per_instance"].items()}}


def versus_hand(results: dict[str, FamilyResult], name: str,
                names: Sequence[str] = DEFAULT_BASELINES) -> dict[str, Any]:
  """A learned controller against the hand schedules chosen on validation.

  Returns:
    ``{"heldout_vs_best_hand_family": name (family-tuned) minus the family
    choice, "heldout_vs_best_hand_instance": name (tuned per instance)
    minus the per-instance oracle, "heldout_headroom": oracle minus family
    choice, "heldout_headroom_captured": (name per instance - family
    choice) / headroom (NaN unless the headroom is positive),
    "heldout_best_hand_family": the family choice}``; the intervals are
    ``{"mean", "ci_low", "ci_high"}`` in test-accuracy points, pooled over
    (shape, seed) pairs.
  """
  names = [n for n in names if n in results and n != name]
  fam, inst = family_choice(results, names), instance_choice(results, names)
  both = {**results, ORACLE: oracle_result(results, inst)}

  def diff(a, b):
    return differences(both, a, b)["pooled"]["acc"]

  room = diff((ORACLE, "instance"), (fam, "family"))
  won = diff((name, "instance"), (fam, "family"))
  return {"heldout_vs_best_hand_family": interval(diff((name, "family"),
                                                       (fam, "family"))),
          "heldout_vs_best_hand_instance": interval(diff((name, "instance"),
                                                         (ORACLE,
                                                          "instance"))),
          "heldout_headroom": interval(room),
          "heldout_headroom_captured": float(won["mean"] / room["mean"])
                                       if room["mean"] > 0 else float("nan"),
          "heldout_best_hand_family": fam}
