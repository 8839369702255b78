"""The `lrmeta meta-train` job: meta-train a controller, judge it, transfer it.

``cfg.kind`` (validated) says what it trains on:

* ``"task"`` (``configs/mlrsnet_fmnist.py``): MLR-SNet meta-trained on one
  task by the estimator ``cfg.meta.estimator`` names
  (:mod:`lrmeta.experiments.meta_loop`), then meta-tested on fresh networks
  (seeds ``cfg.test.seeds``) against ``cfg.test.schedules`` whose base rate
  is tuned with tune seeds disjoint from the test seeds
  (:func:`lrmeta.experiments.transfer.judge_frozen`), with its untrained
  initialisation beside it.
* ``"family"`` (``configs/family_es.py``, ``configs/learned_lr.py``): the
  controller ``cfg.controller.name`` meta-trained on the task family by
  whole-run ES (:mod:`lrmeta.experiments.family_loop`; in the stages of
  ``cfg.meta.stages`` when it names any), then judged on the family's
  held-out shapes against the baselines tuned per instance and once for the
  family (:mod:`lrmeta.experiments.heldout`).

Either way the verdict is against the best baseline, and the frozen
controller is transferred to every section of ``cfg.transfer`` when it is
enabled (:mod:`lrmeta.experiments.transfer`).

The results folder holds ``config.json``, ``meta_metrics.jsonl``,
``summary.md``, ``summary.json``, ``timings.json``, ``meta_training.png``,
``checkpoints/meta`` (resumable meta-training state) and
``checkpoints/controller`` (the frozen controller, for ``lrmeta evaluate``
and ``ckpt:PATH``); on one task also ``metrics.jsonl``, ``curves.png`` and
``transfer.png``, on the family ``heldout.md`` and ``rates.png``.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np

from lrmeta import learned
from lrmeta.experiments import heldout, report
from lrmeta.experiments import results as res
from lrmeta.experiments.build import build_task
from lrmeta.experiments.config import ConfigError
from lrmeta.experiments.family_loop import (SETUPS, meta_train_family,
                                            meta_train_staged,
                                            objective_first_last)
from lrmeta.experiments.meta_loop import (controller_config,
                                          meta_train_controller,
                                          num_meta_steps)
from lrmeta.experiments.transfer import judge_frozen, run_transfers
from lrmeta.learned import mlr_snet as mlr
from lrmeta.protocol import Protocol, disjoint_tune_seeds, fixed

LEARNED, INIT = "MLR-SNet (meta-trained)", "MLR-SNet (untrained init)"


def run(cfg, *, quiet: bool = False) -> dict:
  """Meta-trains, judges and (optionally) transfers the controller on what
  ``cfg.kind`` names; writes the results folder and prints (last) and
  returns the summary."""
  if cfg.kind not in KINDS:
    raise ConfigError(f"config key 'kind' must be one of {tuple(KINDS)}, "
                      f"got {cfg.kind!r}")
  with res.results_folder(cfg.output_dir, keep=("checkpoints",)) as out:
    t_start = time.perf_counter()
    res.write_config(out, cfg)
    summary, sections, rows = KINDS[cfg.kind](cfg, out, quiet)
    summary["seconds"]["total"] = time.perf_counter() - t_start
    text = res.write_summary(out, cfg.name, sections)
    res.write_timings(out, summary["seconds"])
    (out / "summary.json").write_text(json.dumps(
        {"summary": summary, "rows": rows} if rows else summary, indent=1,
        default=float))
    print("\n" + text + f"\nresults written to {cfg.output_dir}/", flush=True)
  print(json.dumps(summary, default=float))
  return summary


# -- one task ------------------------------------------------------------------


def meta_test_protocol(test) -> Protocol:
  """The single-task meta-test's protocol (``cfg.test``): tune seeds
  disjoint from the test seeds."""
  return Protocol(test.steps, tuple(test.lr_grid),
                  disjoint_tune_seeds(tuple(test.seeds)), tuple(test.seeds),
                  eval_every=test.eval_every,
                  eval_examples=test.eval_examples or None)


def _one_task(cfg, out: pathlib.Path, quiet: bool):
  task = build_task(cfg)
  meta_cfg = controller_config(cfg, task)
  mt, theta = _train_one_task(cfg, task, meta_cfg, out, quiet)
  summary, sections, results, rows = _meta_test(cfg, task, mt, theta,
                                                meta_cfg, out, quiet)
  metrics = report.metric_records(results)
  all_rows = {"meta_test": rows}
  if cfg.transfer.enabled:
    def methods(ctask):
      return {LEARNED: lambda steps: fixed(mlr.CONTROLLER.optimizer(
          theta, meta_cfg, steps, num_classes=ctask.dataset.num_classes))}
    done = run_transfers(cfg, methods, summary, sections, quiet=quiet,
                         momentum=cfg.optimizer.momentum,
                         weight_decay=cfg.optimizer.weight_decay)
    for name, stage in done.items():
      metrics += report.metric_records(stage["results"], task="transfer")
      all_rows[f"transfer_{name}"] = report.tuned_names(
          stage["results"], (LEARNED,))[1]
      res.plot_runs(out / report.transfer_figure(name, cfg.transfer.tasks),
                    {n: res.curve(r.hist)
                     for n, r in stage["results"].items()},
                    f"transfer: {stage['task'].name} "
                    f"({cfg.transfer[name].steps} steps)")
  res.write_jsonl(out / "metrics.jsonl", metrics)
  return summary, sections, all_rows


def _train_one_task(cfg, task, meta_cfg, out, quiet):
  """Meta-trains MLR-SNet on ``task`` and saves it; returns the run and the
  theta the meta-test uses (the snapshots, when switched)."""
  print(f"[1/3] meta-training MLR-SNet ({cfg.meta.estimator}) on "
        f"{task.name}, {task.dataset.num_train} train images, horizon "
        f"{cfg.meta.horizon}, {num_meta_steps(cfg)} meta-steps", flush=True)
  mt = meta_train_controller(cfg, task, out, quiet)
  theta = mt["snapshots"] if cfg.meta.snapshots else mt["theta"]
  learned.save(str(out / "checkpoints" / "controller"),
               {f"s{i}": th for i, th in enumerate(theta)}
               if cfg.meta.snapshots else theta, meta_cfg)
  res.plot_meta_trace(out / "meta_training.png", mt["trace"],
                      f"{cfg.name}: meta-training ({cfg.meta.estimator})")
  return mt, theta


def _meta_test(cfg, task, mt, theta, meta_cfg, out, quiet):
  """The frozen MLR-SNet and its untrained initialisation against the
  tuned ``cfg.test.schedules``: ``(summary, sections, results, rows)``."""
  k, first, last = report.trace_first_last(mt["trace"])
  print(f"  meta-objective: first {k} meta-steps {first:.4f} -> last {k} "
        f"{last:.4f} ({mt['seconds']:.0f}s)", flush=True)
  t = cfg.test
  print(f"[2/3] meta-test: {t.steps} steps, seeds {list(t.seeds)}",
        flush=True)
  t0 = time.perf_counter()
  protocol = meta_test_protocol(t)
  frozen = {LEARNED: (theta, meta_cfg),
            INIT: (mt["theta0"], {**meta_cfg, "switch_fractions": []})}
  stage = judge_frozen(
      task, {n: fixed(mlr.CONTROLLER.optimizer(
          th, c, t.steps, num_classes=task.dataset.num_classes))
             for n, (th, c) in frozen.items()}, protocol,
      baselines=tuple(t.schedules), momentum=cfg.optimizer.momentum,
      weight_decay=cfg.optimizer.weight_decay, quiet=quiet,
      log=lambda s: print(f"  [meta-test]{s[1:]}", flush=True))
  results, rows = report.tuned_names(stage["results"], frozen)
  res.plot_runs(out / "curves.png",
                {n: res.curve(r.hist) for n, r in results.items()},
                f"{task.name}: MLR-SNet vs tuned schedules "
                f"({t.steps} steps, {len(t.seeds)} seeds)")
  vs_best = report.tuned_verdict(stage["vs_best"][LEARNED])
  val_loss = {r["method"]: float(np.mean(r["val_loss"])) for r in rows}
  summary = {
      "results_dir": str(pathlib.Path(cfg.output_dir)),
      "meta_estimator": cfg.meta.estimator, "meta_steps": len(mt["trace"]),
      "meta_objective_first": first, "meta_objective_last": last,
      "heldout_val_loss_untrained": val_loss[INIT],
      "heldout_val_loss_learned": val_loss[LEARNED],
      **report.stage_stats(results),
      "tuned_lr": {r["method"]: r["lr"] for r in rows if r["lr"] != "learned"},
      "best_baseline": vs_best["baseline"],
      "learned_vs_best_baseline": vs_best,  # paired, points, verdict
      "seconds": {"meta_train": mt["seconds"],
                  "meta_test": time.perf_counter() - t0}}
  sections = [(None, report.task_meta_note(cfg, mt["trace"], (k, first, last)),
               ""),
              ("Meta-test", report.stage_note(task, cfg.optimizer, t.steps,
                                              protocol),
               report.stage_table(results))]
  return summary, sections, results, rows


# -- the task family -----------------------------------------------------------


def _family(cfg, out: pathlib.Path, quiet: bool):
  name = cfg.controller.name
  print(f"[1/2] meta-training {name} on the task family by whole-run ES "
        f"({cfg.meta.es_pairs} pairs, sigma {cfg.meta.es_sigma}, "
        f"{cfg.meta.meta_steps} meta-steps"
        + (f" in stages {tuple(cfg.meta.stages)}" if cfg.meta.stages else "")
        + ")", flush=True)
  mt = (meta_train_staged(cfg, out, quiet=quiet) if cfg.meta.stages
        else meta_train_family(cfg, out, quiet))
  learned.save(str(out / "checkpoints" / "controller"), mt["theta"],
               mt["config"])
  first, last = objective_first_last(mt["trace"])
  print(f"  validation meta-objective {first:.4f} -> {last:.4f} "
        f"({mt['seconds']:.0f}s)", flush=True)
  res.plot_family_meta(out / "meta_training.png", {f"seed {cfg.seed}":
                                                   mt["trace"]},
                       f"{cfg.name}: {name} meta-trained by whole-run ES")
  summary = {
      "results_dir": str(cfg.output_dir), "controller": name,
      "meta_steps": int(cfg.meta.meta_steps), "es_pairs": cfg.meta.es_pairs,
      "meta_objective_first": first, "meta_objective_last": last,
      "es_cosine": mt["es_cosine"],
      "train_shapes": [s.name for s in mt["shapes"]],
      "seconds": {"meta_train": mt["seconds"]}}
  sections = [(None, report.family_meta_note(cfg, mt, first, last), "")]
  tune = SETUPS[name].tune_base
  labels = {f"{name} (meta-trained)": mt["theta"],
            f"{name} (untrained)": mt["theta0"]}
  if cfg.test.enabled:
    print("[2/2] held-out protocol", flush=True)
    sections.append(_judge_family(cfg, mt, labels, tune, summary, out,
                                  quiet))
  if cfg.transfer.enabled:
    run_transfers(cfg, lambda ctask: {
        label: (lambda steps, th=th: heldout.controller_at(
            mt["config"], th, steps, tune=tune))
        for label, th in labels.items()}, summary, sections, quiet=quiet,
                  momentum=cfg.test.momentum)
  return summary, sections, None


def _judge_family(cfg, mt, labels, tune, summary, out, quiet):
  """The held-out protocol of the learned controller and its
  initialisation; returns the summary section."""
  t0 = time.perf_counter()
  make = (heldout.tuned_controller_method if tune
          else heldout.controller_method)
  learned_name, init_name = labels
  results = heldout.judge(cfg, {n: make(mt["config"], th)
                                for n, th in labels.items()}, quiet)
  summary.update(heldout.versus_cosine(results, learned_name))
  summary.update(heldout.versus_baselines(results, learned_name))
  summary["seconds"]["heldout"] = time.perf_counter() - t0
  others = [(learned_name, "family"), (learned_name, "instance"),
            (init_name, "family")] + report.baseline_rows()
  table = res.write_family_table(out / "heldout.md", results,
                                 ("cosine", "family"), others)
  res.plot_family_rates(out / "rates.png",
                        report.rate_curves(results, (learned_name, "cosine")),
                        f"{learned_name} vs family-tuned cosine on "
                        f"held-out instances")
  return ("Held-out instances", report.test_note(cfg, results), table)


KINDS = {"task": _one_task, "family": _family}
