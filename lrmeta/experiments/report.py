"""What the jobs report: summary notes, table rows and summary records.

The writers and figures live in :mod:`lrmeta.experiments.results`; this
module holds the sentences and records built from a job's config and
results, so that every job reports a stage the same way: a transfer stage
(:func:`transfer_section`), the held-out protocol (:func:`test_note`,
:func:`baseline_rows`, :func:`rate_curves`), a meta-training run
(:func:`task_meta_note`, :func:`family_meta_note`) and a protocol run on one
task (:func:`stage_note`, :func:`stage_stats`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrmeta.experiments import results as res
from lrmeta.protocol import DEFAULT_BASELINES


def history_rows(name: str, seeds, hist) -> list[dict]:
  """``history.csv`` rows: one per (seed, step) of a population."""
  return [{"method": name, "seed": int(seed), "step": t + 1,
           **{k: float(v[i, t]) for k, v in hist.steps.items()}}
          for i, seed in enumerate(seeds)
          for t in range(len(hist.steps["train_loss"][i]))]


def metric_records(results, task: str | None = None) -> list[dict]:
  """``metrics.jsonl`` records of every evaluation of every method."""
  kw = {} if task is None else {"task": task}
  return [rec for n, r in results.items()
          for rec in res.eval_records(n, r.seeds, r.hist, **kw)]


# -- one task ------------------------------------------------------------------


def stage_table(results) -> str:
  """The table of a protocol run on one task."""
  return res.markdown_table(
      ["method", "base lr", "test acc", "val acc", "final val loss"],
      res.result_rows(results, ("test_acc", "val_acc", "val_loss")))


def stage_stats(results) -> dict:
  """Mean and sample std (0 for one seed) of every method's final test
  accuracy."""
  acc = {n: np.asarray(r.hist.final("test_acc"), np.float64)
         for n, r in results.items()}
  return {"test_acc": {n: float(a.mean()) for n, a in acc.items()},
          "test_acc_std": {n: float(a.std(ddof=1)) if a.size > 1 else 0.0
                           for n, a in acc.items()}}


def stage_note(task, optimizer, steps: int, protocol) -> str:
  """One paragraph on a protocol run on one task."""
  n = int(task.dataset.test_y.shape[0])
  images = min(n, protocol.eval_examples) if protocol.eval_examples else n
  return (f"{task.dataset.name} / {task.name.split('/')[-1]}, "
          f"{task.dataset.num_train} training images, {steps} steps of "
          f"batch {task.batch_size}, SGD momentum {optimizer.momentum}, "
          f"weight decay {optimizer.weight_decay}; schedules' base rate "
          f"tuned on mean validation accuracy over {list(protocol.lr_grid)} "
          f"(widened at its edges) with tune seeds "
          f"{list(protocol.tune_seeds)}; test seeds "
          f"{list(protocol.test_seeds)}; {images} test images.")


def task_meta_note(cfg, trace, seconds_first_last) -> str:
  """The meta-training paragraph of a single-task run."""
  k, first, last = seconds_first_last
  return (f"MLR-SNet meta-trained with `{cfg.meta.estimator}` "
          f"({len(trace)} meta-steps, horizon {cfg.meta.horizon}, Adam "
          f"lr {cfg.meta.lr}); meta-objective (meta-set loss) "
          f"{first:.4f} over the first {k} meta-steps -> {last:.4f} "
          f"over the last {k}." + (
              " Meta-test switches snapshots at 1/3 and 2/3 of the "
              "budget." if cfg.meta.snapshots else ""))


def trace_first_last(trace) -> tuple[int, float, float]:
  """``(k, mean meta-loss of the first k meta-steps, of the last k)``,
  ``k`` a quarter of the trace."""
  k = max(1, len(trace) // 4)
  return (k, float(np.mean([r["meta_loss"] for r in trace[:k]])),
          float(np.mean([r["meta_loss"] for r in trace[-k:]])))


# -- the task family -----------------------------------------------------------


def family_meta_note(cfg, mt, first, last) -> str:
  """The meta-training paragraph of a task-family run."""
  m = cfg.meta
  cos = ("" if mt["es_cosine"] is None else
         f" ES signal check at the initial theta: cosine {mt['es_cosine']:.3f}.")
  return (f"{cfg.controller.name} meta-trained on {len(mt['shapes'])} "
          f"training shapes of the family by whole-run antithetic ES "
          f"({m.es_pairs} pairs per meta-step, each on its own instance, "
          f"sigma {m.es_sigma}, perturbing "
          f"{m.perturb or 'every parameter'}; Adam lr {m.lr}; "
          f"{m.meta_steps} meta-steps in {mt['seconds']:.0f} s). "
          f"Validation meta-objective (mean final validation loss over "
          f"{len(mt['validation'])} fixed runs, divided by constant SGD 0.05 "
          f"momentum 0.9 on the same runs): {first:.4f} -> {last:.4f}.{cos}")


def test_note(cfg, results) -> str:
  """One paragraph on the held-out protocol's run."""
  lrs = {n: r.family_lr for n, r in results.items()
         if r.family_lr is not None}
  return (f"{len(next(iter(results.values())).per_instance)} held-out "
          f"shapes, {cfg.test.num_seeds} paired test seeds each; baselines on "
          f"SGD momentum {cfg.test.momentum}, peak rate tuned on mean final "
          f"validation accuracy over {cfg.test.num_tune_seeds} tuning seeds, per "
          f"instance and once for the family (family rates: "
          f"{ {n: round(v, 5) for n, v in lrs.items()} }).")


def baseline_rows(baselines: Sequence[str] = DEFAULT_BASELINES
                  ) -> list[tuple[str, str]]:
  """Held-out table rows of every baseline but family-tuned cosine (the
  reference row), each tuning."""
  return [(b, how) for b in baselines for how in ("instance", "family")
          if (b, how) != ("cosine", "family")]


def rate_curves(results, names) -> dict[str, dict[str, np.ndarray]]:
  """Per held-out shape, each method's mean applied rate per step (its
  per-family result)."""
  out: dict[str, dict[str, np.ndarray]] = {}
  for name in names:
    for shape, r in results[name].per_family.items():
      out.setdefault(shape.name.rsplit("/", 1)[0], {})[name] = np.nanmean(
          np.asarray(r.hist.steps["lr"], np.float64), axis=0)
  return out


# -- names ---------------------------------------------------------------------


def tuned_names(results, frozen) -> tuple[dict, list[dict]]:
  """A one-task stage as the single-task job reports it: the ``frozen``
  methods first, each baseline named ``"<name> (tuned)"``; and its rows
  (final test / validation accuracy and validation loss per seed, the
  tuned rate or ``"learned"``, the validation accuracy per grid rate)."""
  ordered = {**{n: results[n] for n in frozen},
             **{f"{n} (tuned)": r for n, r in results.items()
                if n not in frozen}}
  rows = [{"method": n, "lr": "learned" if n in frozen else r.lr,
           **{k: [float(x) for x in r.hist.final(k)]
              for k in ("test_acc", "val_acc", "val_loss")},
           **({"val_acc_by_lr": r.grid_val_acc} if r.grid_val_acc else {})}
          for n, r in ordered.items()]
  return ordered, rows


def tuned_verdict(vs_best: dict) -> dict:
  """A verdict of :func:`lrmeta.protocol.versus_best` with its baseline
  named as :func:`tuned_names` names it."""
  return {**vs_best, "baseline": f"{vs_best['baseline']} (tuned)"}


def transfer_figure(name: str, names: Sequence[str],
                    stem: str = "transfer") -> str:
  """The curves figure of transfer section ``name``: ``<stem>.png`` for the
  only section, ``<stem>_<name>.png`` among several."""
  return f"{stem}.png" if len(names) == 1 else f"{stem}_{name}.png"


__all__ = ["baseline_rows", "family_meta_note", "history_rows",
           "metric_records", "rate_curves", "stage_note", "stage_stats",
           "stage_table", "task_meta_note", "test_note", "trace_first_last",
           "transfer_figure", "tuned_names", "tuned_verdict"]
