"""LRBench's workflow: select LR policies stage by stage, compose, verify.

Given a task, a step budget and a target accuracy, :func:`select_and_compose`

1. splits the budget into stages and, at each stage, trains every surviving
   candidate policy (several seeds each) for that stage only, starting from the
   checkpoint the previous stage's winner left behind. All candidates x seeds
   of a stage train as **one vmapped program**: policies are packed into a
   fixed array layout (:class:`lrmeta.schedules.PackedPolicy`) and the LR is a
   ``lax.switch`` on the policy id;
2. prunes the bad candidates (validation accuracy more than ``prune_margin``
   below the stage's best, diverged, or outside the ``keep_top`` best) and
   avoids them in the later stages;
   The winner of a stage is the candidate of best *robust utility*, the mean
   validation accuracy over seeds minus ``robust_k`` times its standard
   deviation (a policy that is good on one seed and poor on another loses to
   a steady one; ties go to the cheaper, i.e. earlier to the target);
3. composes the winners of the stages into one multi-stage policy;
4. verifies: trains the composite and the default fixed LR from scratch for
   the full budget on ``verify_seeds`` seeds and reports whether and when each
   reached the target test accuracy.

Each candidate is reported with LRBench's three metrics: utility (validation
accuracy at the end of its stage), cost (steps and wall time to the target)
and robustness (standard deviation of the accuracy over seeds).
Selection uses validation accuracy only; test accuracy is used only to verify.

References:
  Wu & Liu, "Selecting and Composing Learning Rate Policies for Deep Neural
  Networks", ACM TIST 14(2), 2023. Wu et al., "Demystifying Learning Rate
  Policies for High Accuracy Training of Deep Neural Networks", IEEE BigData
  2019.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrmeta.schedules import spec as S
from lrmeta.schedules.optimizers import sgd
from lrmeta.schedules.packed import packed_schedule, stack_packed
from lrmeta.tasks.base import Task
from lrmeta.train import train_population

# (template key, stage length -> spec string). Stage-relative: half periods and
# decay rates are set from the stage length, so a template means the same
# shape in every stage.
CandidateFn = Callable[[int], list[tuple[str, str]]]


def default_candidates(stage_len: int) -> list[tuple[str, str]]:
  """Sixteen candidates from LRBench's families, ranges 1e-3 .. 0.1."""
  n = max(int(stage_len), 4)
  q, h = max(n // 4, 1), max(n // 2, 1)
  g100 = 0.01 ** (1.0 / n)  # decays 100x over the stage
  g10 = 0.1 ** (1.0 / n)
  return [
      ("fix-0.01", "fix(k0=0.01)"),
      ("fix-0.05", "fix(k0=0.05)"),
      ("fix-0.1", "fix(k0=0.1)"),
      ("step", f"step(k0=0.1, gamma=0.5, l={q})"),
      ("exp", f"exp(k0=0.1, gamma={g100:.6f})"),
      ("inv", f"inv(k0=0.1, gamma={20.0 / n:.6g}, p=0.75)"),
      ("poly", f"poly(k0=0.1, k1=0.001, p=1.5, l={n})"),
      ("cos", f"cos(k0=0.001, k1=0.1, l={n})"),
      ("upcos", f"upcos(k0=0.01, k1=0.1, l={n})"),
      ("tri2", f"tri2(k0=0.01, k1=0.1, l={q})"),
      ("dtri", f"dtri(k0=0.005, k1=0.1, l={n})"),
      ("sin2", f"sin2(k0=0.01, k1=0.1, l={q})"),
      ("triexp", f"triexp(k0=0.01, k1=0.1, gamma={g10:.6f}, l={q})"),
      ("cosrsw", f"cosrsw(k0=0.001, k1=0.1, l={h})"),
      ("sgdr", f"sgdr(k0=0.001, k1=0.1, l={h})"),
      ("onecycle", f"onecycle(k0=0.01, k1=0.1, k2=0.0005, l={n}, p=0.3)"),
  ]


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
  """Settings of :func:`select_and_compose`.

  Attributes:
    budget: training steps of the whole (composed) policy.
    target: target test accuracy; <= 0 means the default policy's final test
      accuracy (rounded down to 3 decimals).
    stage_fractions: stage boundaries as fractions of the budget.
    seeds: seeds of every candidate during selection.
    verify_seeds: seeds of the verification runs.
    eval_every: steps between evaluations.
    eval_examples: examples per evaluation.
    prune_margin: prune a candidate whose utility is this far below the
      stage's best.
    keep_top: prune all but this many candidates of a stage.
    robust_k: candidates rank by mean - robust_k * std of the seeds' accuracy.
    momentum: SGD momentum of every run.
    default: the baseline policy (a spec string).
  """

  budget: int = 1000
  target: float = 0.0
  stage_fractions: tuple[float, ...] = (0.3, 0.6)
  seeds: tuple[int, ...] = (0, 1)
  verify_seeds: tuple[int, ...] = (10, 11, 12)
  eval_every: int = 50
  eval_examples: int = 2000
  prune_margin: float = 0.02
  keep_top: int = 6
  robust_k: float = 1.0
  momentum: float = 0.9
  default: str = "fix(k0=0.01)"


@dataclasses.dataclass
class CandidateResult:
  """One candidate of one stage, with LRBench's utility, cost and robustness.

  ``status`` is ``"selected"`` (the stage's winner), ``"kept"`` or
  ``"pruned"`` (not tried in later stages).
  """

  stage: int
  key: str
  spec: str  # stage-local policy
  utility: float  # mean val accuracy at the end of the stage
  spread: float  # std over seeds of that accuracy
  steps_to_target: float  # absolute step, on the seed-mean val curve
  time_to_target_s: float
  wall_s: float  # the population's wall time divided by its size
  status: str = "kept"  # selected / kept / pruned


@dataclasses.dataclass
class VerifyResult:
  """A policy trained from scratch for the full budget on the verify seeds."""

  spec: str
  eval_steps: np.ndarray
  test_acc: np.ndarray  # [seeds, evals]
  lr: np.ndarray  # [seeds, steps]
  wall_s: float
  target: float
  finite: np.ndarray | None = None  # [seeds]: which runs never diverged

  @property
  def mean_curve(self) -> np.ndarray:
    return self.test_acc.mean(0)

  @property
  def steps_to_target(self) -> float:
    return _first_hit(self.eval_steps, self.mean_curve, self.target)

  @property
  def steps_to_target_per_seed(self) -> list[float]:
    return [_first_hit(self.eval_steps, a, self.target) for a in self.test_acc]

  @property
  def final_acc(self) -> float:
    return float(self.mean_curve[-1])

  @property
  def final_spread(self) -> float:
    return float(self.test_acc[:, -1].std())


@dataclasses.dataclass
class SelectionResult:
  """Everything :func:`select_and_compose` measured; ``summary()`` for JSON."""

  task: str
  budget: int
  target: float
  stage_bounds: list[int]
  candidates: list[CandidateResult]
  selected: str
  default: VerifyResult
  verified: VerifyResult
  wall_s: float

  def summary(self) -> dict[str, Any]:
    d, s = self.default.steps_to_target, self.verified.steps_to_target
    if math.isfinite(d) and math.isfinite(s):
      speed = d / s
    elif math.isfinite(s):
      speed = math.inf  # only the selected policy reached the target
    else:
      speed = math.nan
    return {
        "task": self.task,
        "budget": self.budget,
        "target_accuracy": round(self.target, 4),
        "default_policy": self.default.spec,
        "selected_policy": self.selected,
        "steps_to_target_default": _num(d),
        "steps_to_target_selected": _num(s),
        "speedup_to_target": (_num(speed, 3) if math.isfinite(speed)
                              else ("inf" if speed > 0 else None)),
        "final_test_acc_default": round(self.default.final_acc, 4),
        "final_test_acc_selected": round(self.verified.final_acc, 4),
        "spread_default": round(self.default.final_spread, 4),
        "spread_selected": round(self.verified.final_spread, 4),
        "steps_to_target_default_per_seed": [
            _num(x) for x in self.default.steps_to_target_per_seed],
        "steps_to_target_selected_per_seed": [
            _num(x) for x in self.verified.steps_to_target_per_seed],
        "wall_s": round(self.wall_s, 1),
    }


def _num(x, nd=1):
  if x is None or not math.isfinite(x):
    return None
  return round(float(x), nd)


def _first_hit(steps, curve, target):
  hit = np.nonzero(np.asarray(curve) >= target)[0]
  return float(steps[hit[0]]) if hit.size else math.inf


def _keys(seeds: Sequence[int], repeat: int) -> jax.Array:
  seeds = np.tile(np.asarray(seeds, np.uint32), repeat)
  return jax.vmap(jax.random.key)(jnp.asarray(seeds))


def make_optimizer(momentum: float):
  """``packed policy -> SGD(schedule, momentum)`` for ``train_population``."""
  return lambda h: sgd(packed_schedule(h), momentum=momentum)


def run_policies(task: Task, specs: Sequence[Any], seeds: Sequence[int],
                 num_steps: int, *, momentum: float = 0.9,
                 eval_every: int = 50, eval_examples: int | None = None,
                 eval_splits=("val", "test"), max_stages: int | None = None,
                 state=None, progress: bool = False):
  """Trains ``len(specs) x len(seeds)`` runs as one vmapped population.

  Member ``i * len(seeds) + j`` runs policy ``i`` with seed ``seeds[j]``.
  Policies may be of different families and composites of different lengths.
  Returns ``(states, history)`` of :func:`lrmeta.train.train_population`.
  """
  parsed = [S.parse_spec(s) for s in specs]
  if max_stages is None:
    max_stages = max(len(S.stages_of(s)[0]) for s in parsed)
  packed = stack_packed([S.pack_spec(s, max_stages) for s in parsed
                           for _ in seeds])
  keys = _keys(seeds, len(parsed))
  return train_population(task, make_optimizer(momentum), packed, keys,
                          num_steps, eval_every=eval_every,
                          eval_splits=eval_splits,
                          eval_examples=eval_examples, progress=progress,
                          state=state)


def _stage_bounds(budget, fractions):
  bounds = [0] + [int(round(f * budget)) for f in fractions] + [budget]
  if any(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:])):
    raise ValueError(f"stage fractions {fractions} give empty stages "
                     f"for budget {budget}: {bounds}")
  return bounds


def _verify(task, spec, cfg, log):
  state, hist = run_policies(
      task, [spec], cfg.verify_seeds, cfg.budget, momentum=cfg.momentum,
      eval_every=cfg.eval_every, eval_examples=cfg.eval_examples,
      eval_splits=("test",))
  del state
  res = VerifyResult(S.format_spec(spec), hist.eval_steps,
                     np.asarray(hist.evals["test_acc"]),
                     np.asarray(hist.steps["lr"]), hist.wall_time, 0.0,
                     np.asarray(hist.finite()))
  log(f"verify {res.spec}: final test acc {res.final_acc:.4f} "
      f"+- {res.final_spread:.4f} ({hist.wall_time:.0f}s)")
  return res


def select_and_compose(task: Task, config: SelectionConfig | None = None,
                       candidates: CandidateFn = default_candidates,
                       log: Callable[[str], None] = print) -> SelectionResult:
  """Runs LRBench's select / prune / compose / verify loop on ``task``.

  Args:
    task: what to train.
    config: the settings; default ``SelectionConfig()``.
    candidates: ``stage_length -> [(key, spec), ...]``; keys identify a
      candidate across stages (pruned keys are not tried again).
    log: progress messages.

  Returns:
    A :class:`SelectionResult` (``.summary()`` gives the headline figures).
  """
  cfg = SelectionConfig() if config is None else config
  t0 = time.perf_counter()
  bounds = _stage_bounds(cfg.budget, cfg.stage_fractions)
  seeds = tuple(cfg.seeds)
  ns = len(seeds)

  # The default first: its final accuracy is the target unless one is given.
  default = _verify(task, cfg.default, cfg, log)
  target = float(cfg.target)
  if target <= 0:
    target = math.floor(default.final_acc * 1000) / 1000
    log(f"target = default's final test accuracy, {target:.3f}")
  default.target = target

  rows: list[CandidateResult] = []
  pruned: set[str] = set()
  chosen: list[str] = []
  state = None
  for stage, (b0, b1) in enumerate(zip(bounds, bounds[1:])):
    length = b1 - b0
    cands = [(k, s) for k, s in candidates(length) if k not in pruned]
    prefix = chosen
    specs = [S.compose_specs(prefix + [s], _lengths(bounds, stage))
             for _, s in cands]
    if state is not None:
      # Every member continues from the winner's state of its own seed.
      idx = np.tile(np.arange(ns), len(cands))
      state = jax.tree.map(lambda x: x[idx], state)
    log(f"stage {stage} [{b0}, {b1}): {len(cands)} candidates x {ns} seeds")
    new_state, hist = run_policies(
        task, specs, seeds, length, momentum=cfg.momentum,
        eval_every=min(cfg.eval_every, length),
        eval_examples=cfg.eval_examples, eval_splits=("val",),
        max_stages=len(bounds) - 1, state=state)
    val = np.asarray(hist.evals["val_acc"]).reshape(len(cands), ns, -1)
    val = np.where(np.isfinite(val), val, 0.0)
    steps = hist.eval_steps + b0
    per_member = hist.wall_time / (len(cands) * ns)
    stage_rows = []
    for c, (key, spec) in enumerate(cands):
      final = val[c, :, -1]
      hit = _first_hit(steps, val[c].mean(0), target)
      stage_rows.append(CandidateResult(
          stage, key, S.format_spec(spec), float(final.mean()),
          float(final.std()), hit,
          per_member * (hit - b0) / length if math.isfinite(hit) else math.inf,
          per_member))
    # Best robust utility (mean - robust_k * std over seeds: LRBench's
    # utility and robustness in one score); ties broken by cost.
    order = sorted(range(len(cands)), key=lambda c: (
        -round(stage_rows[c].utility
               - cfg.robust_k * stage_rows[c].spread, 4),
        stage_rows[c].steps_to_target, stage_rows[c].spread))
    best = order[0]
    for rank, c in enumerate(order):
      r = stage_rows[c]
      if c == best:
        r.status = "selected"
      elif (r.utility < stage_rows[best].utility - cfg.prune_margin
            or rank >= cfg.keep_top):
        r.status = "pruned"
        pruned.add(r.key)
    rows.extend(stage_rows)
    log(f"  best {stage_rows[best].spec}: val acc "
        f"{stage_rows[best].utility:.4f} +- {stage_rows[best].spread:.4f}; "
        f"pruned {sum(r.status == 'pruned' for r in stage_rows)}")
    chosen = prefix + [cands[best][1]]
    sel = np.arange(best * ns, (best + 1) * ns)
    state = jax.tree.map(lambda x: x[sel], new_state)

  selected = S.format_spec(S.compose_specs(chosen, _lengths(bounds, None)))
  log(f"selected: {selected}")
  verified = _verify(task, selected, cfg, log)
  verified.target = target
  return SelectionResult(task.name, cfg.budget, target, bounds, rows,
                         selected, default, verified,
                         time.perf_counter() - t0)


def _lengths(bounds, stage):
  """Stage lengths of the composite up to ``stage`` (all but the last)."""
  n = len(bounds) - 1 if stage is None else stage + 1
  return [bounds[i + 1] - bounds[i] for i in range(n - 1)]
