"""The `lrmeta meta-train` job: meta-train MLR-SNet, meta-test it, transfer it.

1. Meta-training from the default initialisation with the estimator
   ``cfg.meta.estimator`` names (:mod:`lrmeta.experiments.meta_loop`;
   resumable).
2. Meta-test: fresh networks (seeds ``cfg.test.seeds``, disjoint from the
   meta-training runs) trained for ``cfg.test.steps`` by the frozen learned
   MLR-SNet, by the untrained initialisation, and by ``cfg.test.schedules``
   (the baselines of :data:`lrmeta.protocol.DEFAULT_BASELINES`) whose base
   rate is tuned on mean validation accuracy over ``cfg.test.lr_grid`` with
   tune seeds disjoint from the test seeds (:func:`lrmeta.protocol.compare`),
   same optimizer, budget and test seeds; the verdict is against the best
   baseline (:func:`lrmeta.protocol.versus_best`).
3. Transfer (``cfg.transfer.enabled``): the same frozen controller on
   another task against ``cfg.transfer.schedules``, tuned the same way.

The results folder holds ``config.json``, ``meta_metrics.jsonl``,
``metrics.jsonl``, ``summary.md``, ``summary.json``, ``timings.json``,
``meta_training.png``, ``curves.png``, ``transfer.png``,
``checkpoints/meta`` (resumable meta-training state) and
``checkpoints/controller`` (the frozen controller, for ``lrmeta evaluate``).
"""

from __future__ import annotations

import json
import pathlib
import time

import ml_collections
import numpy as np

from lrmeta import learned
from lrmeta.experiments import results as res
from lrmeta.experiments.meta_loop import (controller_config,
                                          meta_train_controller,
                                          num_meta_steps)
from lrmeta.experiments.train_job import build_task
from lrmeta.learned import mlr_snet as mlr
from lrmeta.protocol import (Protocol, compare, disjoint_tune_seeds, fixed,
                             schedule_method, versus_best)

LEARNED, INIT = "MLR-SNet (meta-trained)", "MLR-SNet (untrained init)"


def _stage(cfg, task, stage, learned_theta, theta0, meta_cfg, schedules,
           quiet, tag):
  """Frozen MLR-SNet (and its untrained init) vs tuned ``schedules`` on
  ``task`` with the budget, seeds and grid of ``stage``."""
  steps, seeds = stage.steps, tuple(stage.seeds)
  frozen = {LEARNED: (learned_theta, meta_cfg)}
  if theta0 is not None:
    frozen[INIT] = (theta0, {**meta_cfg, "switch_fractions": []})
  methods = {n: fixed(mlr.CONTROLLER.optimizer(
      th, c, steps, num_classes=task.dataset.num_classes))
             for n, (th, c) in frozen.items()}
  for kind in schedules:
    methods[f"{kind} (tuned)"] = schedule_method(
        kind, steps, momentum=cfg.optimizer.momentum,
        weight_decay=cfg.optimizer.weight_decay)
  protocol = Protocol(steps, tuple(stage.lr_grid),
                      disjoint_tune_seeds(seeds), seeds,
                      eval_every=stage.eval_every,
                      eval_examples=stage.eval_examples or None)
  results = compare(task, methods, protocol, quiet=quiet,
                    log=lambda s: print(f"  [{tag}]{s[1:]}", flush=True))
  rows = [{"method": n, "lr": "learned" if n in frozen else r.lr,
           **{k: [float(x) for x in r.hist.final(k)]
              for k in ("test_acc", "val_acc", "val_loss")},
           **({"val_acc_by_lr": r.grid_val_acc} if r.grid_val_acc else {})}
          for n, r in results.items()]
  return results, rows


def _table(results) -> str:
  return res.markdown_table(
      ["method", "base lr", "test acc", "val acc", "final val loss"],
      res.result_rows(results, ("test_acc", "val_acc", "val_loss")))


def _stats(rows, seeds) -> dict:
  return {"test_acc": {r["method"]: float(np.mean(r["test_acc"]))
                       for r in rows},
          "test_acc_std": {r["method"]: float(np.std(r["test_acc"], ddof=1))
                           if len(seeds) > 1 else 0.0 for r in rows}}


def _note(task, cfg, stage, grid) -> str:
  n = int(task.dataset.test_y.shape[0])
  images = min(n, stage.eval_examples) if stage.eval_examples else n
  return (f"{task.dataset.name} / {task.name.split('/')[-1]}, "
          f"{task.dataset.num_train} training images, {stage.steps} steps of "
          f"batch {task.batch_size}, SGD momentum {cfg.optimizer.momentum}, "
          f"weight decay {cfg.optimizer.weight_decay}; schedules' base rate "
          f"tuned on mean validation accuracy over {list(grid)} (widened at "
          f"its edges) with tune seeds {list(disjoint_tune_seeds(stage.seeds))}"
          f"; test seeds {list(stage.seeds)}; {images} test images.")


def run(cfg: ml_collections.ConfigDict, *, quiet: bool = False) -> dict:
  """Meta-trains, meta-tests and (optionally) transfers MLR-SNet; writes
  the results folder and prints (last) and returns the summary. A config
  with a ``family`` section meta-trains on the task family instead
  (:mod:`lrmeta.experiments.family_job`)."""
  if "family" in cfg:
    from lrmeta.experiments import family_job  # pylint: disable=import-outside-toplevel
    return family_job.run(cfg, quiet=quiet)
  task = build_task(cfg)
  with res.results_folder(cfg.output_dir, keep=("checkpoints",)) as out:
    summary = _run(cfg, task, out, quiet)
  print(json.dumps(summary, default=float))
  return summary


def _run(cfg, task, out, quiet) -> dict:
  t_start = time.perf_counter()
  res.write_config(out, cfg)
  meta_cfg = controller_config(cfg, task)
  print(f"[1/3] meta-training MLR-SNet ({cfg.meta.estimator}) on "
        f"{task.name}, {task.dataset.num_train} train images, horizon "
        f"{cfg.meta.horizon}, {num_meta_steps(cfg)} meta-steps", flush=True)
  mt = meta_train_controller(cfg, task, out, quiet)
  if cfg.meta.snapshots:
    theta = mt["snapshots"]
    saved = {f"s{i}": th for i, th in enumerate(theta)}
  else:
    theta = saved = mt["theta"]
  learned.save(str(out / "checkpoints" / "controller"), saved, meta_cfg)
  trace = mt["trace"]
  k = max(1, len(trace) // 4)
  first = float(np.mean([r["meta_loss"] for r in trace[:k]]))
  last = float(np.mean([r["meta_loss"] for r in trace[-k:]]))
  res.plot_meta_trace(out / "meta_training.png", trace,
                      f"{cfg.name}: meta-training ({cfg.meta.estimator})")
  print(f"  meta-objective: first {k} meta-steps {first:.4f} -> last {k} "
        f"{last:.4f} ({mt['seconds']:.0f}s)", flush=True)

  print(f"[2/3] meta-test: {cfg.test.steps} steps, seeds "
        f"{list(cfg.test.seeds)}", flush=True)
  t0 = time.perf_counter()
  results, rows = _stage(cfg, task, cfg.test, theta, mt["theta0"], meta_cfg,
                         tuple(cfg.test.schedules), quiet, "meta-test")
  seconds = {"meta_train": mt["seconds"],
             "meta_test": time.perf_counter() - t0}
  res.plot_runs(out / "curves.png",
                {n: res.curve(r.hist) for n, r in results.items()},
                f"{task.name}: MLR-SNet vs tuned schedules "
                f"({cfg.test.steps} steps, {len(cfg.test.seeds)} seeds)")
  base = [r for r in rows if r["lr"] != "learned"]
  vs_best = versus_best(results, LEARNED, [r["method"] for r in base])
  summary = {
      "results_dir": str(pathlib.Path(cfg.output_dir)),
      "meta_estimator": cfg.meta.estimator, "meta_steps": len(trace),
      "meta_objective_first": first, "meta_objective_last": last,
      "heldout_val_loss_untrained": float(np.mean(rows[1]["val_loss"])),
      "heldout_val_loss_learned": float(np.mean(rows[0]["val_loss"])),
      **_stats(rows, cfg.test.seeds),
      "tuned_lr": {r["method"]: r["lr"] for r in base},
      "best_baseline": vs_best["baseline"],
      # paired over test seeds, in accuracy points, with its verdict
      "learned_vs_best_baseline": vs_best,
      "seconds": seconds}
  meta_note = (f"MLR-SNet meta-trained with `{cfg.meta.estimator}` "
               f"({len(trace)} meta-steps, horizon {cfg.meta.horizon}, Adam "
               f"lr {cfg.meta.lr}); meta-objective (meta-set loss) "
               f"{first:.4f} over the first {k} meta-steps -> {last:.4f} "
               f"over the last {k}." + (
                   " Meta-test switches snapshots at 1/3 and 2/3 of the "
                   "budget." if cfg.meta.snapshots else ""))
  sections = [(None, meta_note, ""),
              ("Meta-test", _note(task, cfg, cfg.test, cfg.test.lr_grid),
               _table(results))]
  all_rows = {"meta_test": rows}

  metrics = [rec for n, r in results.items()
             for rec in res.eval_records(n, r.seeds, r.hist)]
  if cfg.transfer.enabled:
    tres, summary["transfer"], section, all_rows["transfer"] = _transfer(
        cfg, theta, meta_cfg, out, quiet)
    sections.append(section)
    metrics += [rec for n, r in tres.items()
                for rec in res.eval_records(n, r.seeds, r.hist,
                                            task="transfer")]

  summary["seconds"]["total"] = time.perf_counter() - t_start
  res.write_jsonl(out / "metrics.jsonl", metrics)
  text = res.write_summary(out, cfg.name, sections)
  res.write_timings(out, summary["seconds"])
  (out / "summary.json").write_text(json.dumps(
      {"summary": summary, "rows": all_rows}, indent=1, default=float))
  print("\n" + text + f"\nresults written to {cfg.output_dir}/", flush=True)
  return summary


def _transfer(cfg, theta, meta_cfg, out, quiet):
  """The frozen controller on ``cfg.transfer``'s task against its tuned
  schedules: ``(results, summary, section, rows)``."""
  t = cfg.transfer
  ctask = build_task(ml_collections.ConfigDict({"task": t.task.to_dict()}))
  print(f"[3/3] transfer: {ctask.name}, {ctask.dataset.num_train} train "
        f"images, {t.steps} steps of batch {ctask.batch_size}, seeds "
        f"{list(t.seeds)}", flush=True)
  t0 = time.perf_counter()
  tres, trows = _stage(cfg, ctask, t, theta, None, meta_cfg,
                       tuple(t.schedules), quiet, "transfer")
  res.plot_runs(out / "transfer.png",
                {n: res.curve(r.hist) for n, r in tres.items()},
                f"transfer: {ctask.name} ({t.steps} steps)")
  tvs = versus_best(tres, LEARNED, [r["method"] for r in trows[1:]])
  summary = {
      "task": f"{ctask.dataset.name} / {t.task.model}",
      **_stats(trows, t.seeds),
      "tuned_lr": {r["method"]: r["lr"] for r in trows[1:]},
      "learned_vs_best_baseline": tvs,
      "within_1_point": bool(tvs["mean"] >= -1.0),
      "seconds": time.perf_counter() - t0}
  section = ("Transfer (frozen MLR-SNet)", _note(ctask, cfg, t, t.lr_grid),
             _table(tres))
  return tres, summary, section, trows
