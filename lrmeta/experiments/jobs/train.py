"""The `lrmeta train` job: methods compared on one task, seeds vmapped.

Build (the task, every method) -> train (:func:`lrmeta.protocol.compare`
with an empty grid: every method at the config's rate) -> report.

Every entry of ``cfg.methods`` (a classic schedule, an LRBench policy spec,
an online controller call or ``ckpt:PATH``, see
:func:`lrmeta.experiments.optim.method_optimizer`) trains at the config's
``learning_rate`` on the seeds ``cfg.seeds`` as one vmapped population. The
results folder holds ``config.json``, ``metrics.jsonl`` (every evaluation),
``history.csv`` (every step), ``summary.md``, ``curves.png`` and
``timings.json``.
"""

from __future__ import annotations

import json
import pathlib

import jax

from lrmeta.experiments import results as res
from lrmeta.experiments.build import build_task, num_steps
from lrmeta.experiments.optim import build_method
from lrmeta.experiments.report import history_rows, metric_records
from lrmeta.protocol import Protocol, compare


def run(cfg, *, quiet: bool = False) -> dict:
  """Trains every method in ``cfg.methods`` over ``cfg.seeds``; writes the
  results folder and returns the summary printed as the last line."""
  task = build_task(cfg)
  steps = num_steps(cfg, task)
  with res.results_folder(cfg.output_dir) as out:
    summary = _run(cfg, task, steps, out, quiet)
  print(json.dumps(summary))
  return summary


def _run(cfg, task, steps, out, quiet) -> dict:
  res.write_config(out, cfg)
  methods = {name: build_method(
      name, optimizer=cfg.optimizer.name, learning_rate=cfg.learning_rate,
      momentum=cfg.optimizer.momentum,
      weight_decay=cfg.optimizer.weight_decay, num_steps=steps,
      num_classes=task.dataset.num_classes) for name in cfg.methods}
  seeds = tuple(cfg.seeds)
  protocol = Protocol(steps, (), (), seeds, eval_every=cfg.train.eval_every,
                      eval_examples=cfg.train.eval_examples or None)
  results = compare(task, methods, protocol, quiet=quiet)
  res.write_jsonl(out / "metrics.jsonl", metric_records(results))
  res.write_csv(out / "history.csv", [
      row for name, r in results.items()
      for row in history_rows(name, r.seeds, r.hist)])
  table = res.markdown_table(
      ["method", "lr", "test acc", "val acc", "test loss"],
      res.result_rows(results))
  spread = " (mean ± std)" if len(seeds) > 1 else ""
  note = (f"{task.dataset.name}, model {cfg.task.model}, "
          f"{task.dataset.num_train} training images, {steps} steps of batch "
          f"{task.batch_size} ({cfg.train.epochs} epochs), "
          f"{cfg.optimizer.name} lr {cfg.learning_rate}, seeds "
          f"{list(seeds)}{spread}, backend {jax.default_backend()}. "
          + res.clip_note(results)).strip()
  res.write_comparison(out, cfg.name, results, note, table, cfg.output_dir)
  summary = {"results_dir": str(pathlib.Path(cfg.output_dir)),
             "steps": steps,
             "test_acc": {n: res.mean_std(r.hist.final("test_acc"))
                          for n, r in results.items()}}
  diverged = {n: r.hist.num_diverged for n, r in results.items()}
  if any(diverged.values()):
    summary["diverged"] = diverged
  return summary
