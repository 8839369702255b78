"""The `lrmeta evaluate` job: a saved controller, frozen, on any task.

The plug-and-play use of a learned controller (MLR-SNet's headline claim;
the RL policy's transfer): load it from the folder :func:`lrmeta.learned.save`
wrote, apply it with no further training to the task of the config (another
dataset, architecture, budget or label noise), and compare it with
hand-designed schedules (``cfg.baselines``, by default every baseline of
:data:`lrmeta.protocol.DEFAULT_BASELINES`) whose peak rate is tuned on the
same task's validation split with tune seeds disjoint from the test seeds,
same budget and test seeds; the verdict is against the best baseline
(:func:`lrmeta.protocol.versus_best`).
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from lrmeta import learned
from lrmeta.experiments import results as res
from lrmeta.experiments.config import ConfigError, check_range
from lrmeta.experiments.train_job import build_task, num_steps
from lrmeta.protocol import (Method, Protocol, compare, differences,
                             disjoint_tune_seeds, fixed, schedule_method,
                             versus_best)


def run(cfg, *, quiet: bool = False) -> dict:
  """Applies ``cfg.controller`` frozen to ``cfg.task`` against tuned
  ``cfg.baselines``; writes the results folder and returns the summary."""
  if not cfg.controller:
    raise ConfigError("config key 'controller' is empty: give the folder of "
                      "a saved controller, e.g. --config.controller=results/"
                      "mlrsnet_fmnist/checkpoints/controller")
  check_range(cfg, "train.eval_every", 1)
  saved = learned.load(cfg.controller)
  task = build_task(cfg)
  steps = num_steps(cfg, task)
  with res.results_folder(cfg.output_dir) as out:
    summary = _run(cfg, saved, task, steps, out, quiet)
  print(json.dumps(summary))
  return summary


def _run(cfg, saved, task, steps, out, quiet) -> dict:
  res.write_config(out, cfg)
  seeds = tuple(cfg.seeds)
  kind = saved.kind
  frozen = saved.frozen(steps, num_classes=task.dataset.num_classes)
  print(f"{kind} from {cfg.controller}, frozen, on {task.name} "
        f"({task.dataset.name}, {task.dataset.num_train} training images), "
        f"{steps} steps of batch {task.batch_size}, seeds {list(seeds)}",
        flush=True)
  ctl = f"{kind} (frozen)"
  methods = {ctl: fixed(*frozen)}
  if cfg.tune_controller:  # its base rate tuned like the baselines' peak
    ctl = f"{kind} (frozen, base rate tuned)"
    methods = {ctl: Method(
        lambda lr: saved.controller.optimizer(
            saved.theta, saved.config, steps, learning_rate=lr,
            num_classes=task.dataset.num_classes), frozen.signals)}
  for kind_b in cfg.baselines:
    methods[kind_b] = schedule_method(
        kind_b, steps, optimizer=cfg.optimizer.name,
        momentum=cfg.optimizer.momentum,
        weight_decay=cfg.optimizer.weight_decay)
  protocol = Protocol(steps, tuple(cfg.lr_grid), disjoint_tune_seeds(seeds),
                      seeds,
                      eval_every=cfg.train.eval_every,
                      eval_examples=cfg.train.eval_examples or None)
  raw = compare(task, methods, protocol, quiet=quiet,
                log=lambda s: print(s, flush=True))
  tuned_lr = {n: raw[n].lr for n in cfg.baselines}
  # Tables and the summary name a tuned baseline by its rate.
  results = {(f"{n} (tuned lr={r.lr:g})" if n in cfg.baselines else n): r
             for n, r in raw.items()}
  metrics = [rec for n, r in results.items()
             for rec in res.eval_records(n, r.seeds, r.hist)]
  res.write_jsonl(out / "metrics.jsonl", metrics)
  table = res.markdown_table(["method", "base lr", "test acc", "val acc"],
                             res.result_rows(results, ("test_acc", "val_acc")))
  spread = "mean ± std over" if len(seeds) > 1 else ""
  note = (f"Frozen {kind} from `{cfg.controller}` on {task.dataset.name} / "
          f"{cfg.task.model}, {task.dataset.num_train} training images, "
          f"{steps} steps of batch {task.batch_size}; baselines "
          f"{cfg.optimizer.name} (momentum {cfg.optimizer.momentum}, weight "
          f"decay {cfg.optimizer.weight_decay}) with the peak rate tuned over "
          f"{list(cfg.lr_grid)} (widened at its edges) on validation "
          f"accuracy with tune seeds {list(protocol.tune_seeds)}; {spread} "
          f"test seeds {list(seeds)}; backend {jax.default_backend()}.")
  res.write_comparison(out, cfg.name, results, note, table, cfg.output_dir)
  acc = {n: float(np.mean(r.hist.final("test_acc")))
         for n, r in results.items()}
  summary = {"results_dir": str(pathlib.Path(cfg.output_dir)),
             "controller": kind, "steps": steps, "test_acc": acc,
             "tuned_lr": tuned_lr}
  if cfg.tune_controller:
    summary["controller_lr"] = raw[ctl].lr
  for kind_b, lr in tuned_lr.items():
    b = f"{kind_b} (tuned lr={lr:g})"
    summary[f"gap_to_tuned_{kind_b}"] = round(100 * (acc[ctl] - acc[b]), 2)
    # Every method ran on the same seeds: the difference is paired by seed.
    diff = differences(results, ctl, b)["pooled"]["acc"]
    summary[f"vs_tuned_{kind_b}"] = {k: diff[k] for k in
                                     ("mean", "ci_low", "ci_high")}
  summary["vs_best_baseline"] = versus_best(
      raw, ctl, list(cfg.baselines))
  return summary
