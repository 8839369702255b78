"""The `lrmeta evaluate` job: a saved controller, frozen, on any task.

This is the plug-and-play use of a learned controller (MLR-SNet's headline
claim; the RL policy's transfer): load it from the folder
:func:`lrmeta.meta.save_controller` wrote, apply it with no further training
to the task of the config (another dataset, architecture, budget or label
noise), and compare it with hand-designed schedules whose peak rate is tuned
on the same task's validation split, same budget and seeds.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import jax
import numpy as np
import optax

from lrmeta.experiments import results as res
from lrmeta.experiments.baselines import seed_keys, tune_schedule
from lrmeta.experiments.config import check_range
from lrmeta.experiments.train_job import build_task, num_steps
from lrmeta.meta import load_controller
from lrmeta.train import loss_signal, train_population

# Controller name saved in the checkpoint -> the job module that rebuilds it.
_BUILDERS = {"mlr_snet": "lrmeta.experiments.meta_job",
             "rl_policy": "lrmeta.experiments.rl_job"}


def controller_kind(ckpt_dir: str) -> str:
  """The ``controller`` field a saved controller's config records."""
  _, meta = load_controller(ckpt_dir)
  kind = meta.get("controller")
  if kind not in _BUILDERS:
    raise ValueError(f"{ckpt_dir}: unknown saved controller {kind!r}; "
                     f"known: {sorted(_BUILDERS)}")
  return kind


def frozen_controller(ckpt_dir: str, steps: int, num_classes: int | None
                      = None) -> tuple[optax.GradientTransformation,
                                       Callable[..., Any]]:
  """``(optimizer, signals)`` of a saved controller applied frozen.

  ``signals`` is the training-loop signal function it needs (the minibatch
  loss for MLR-SNet; also validation losses for the RL policy).
  """
  import importlib  # pylint: disable=import-outside-toplevel
  kind = controller_kind(ckpt_dir)
  job = importlib.import_module(_BUILDERS[kind])
  if kind == "mlr_snet":
    return job.frozen_optimizer(ckpt_dir, steps,
                                num_classes=num_classes), loss_signal
  return (job.frozen_optimizer(ckpt_dir, steps),
          job.frozen_signals(ckpt_dir, steps))


def frozen_optimizer(ckpt_dir: str, steps: int) -> optax.GradientTransformation:
  """The optimizer part of :func:`frozen_controller`."""
  return frozen_controller(ckpt_dir, steps)[0]


def run(cfg, *, quiet: bool = False) -> dict:
  """Applies ``cfg.controller`` frozen to ``cfg.task`` against tuned
  ``cfg.baselines``; writes the results folder and returns the summary."""
  if not cfg.controller:
    raise ValueError("config key 'controller' is empty: give the folder of a "
                     "saved controller, e.g. --config.controller=results/"
                     "mlrsnet_fmnist/checkpoints/controller")
  check_range(cfg, "train.eval_every", 1)
  task = build_task(cfg)
  steps = num_steps(cfg, task)
  out = res.run_dir(cfg.output_dir)
  res.write_config(out, cfg)
  keys = seed_keys(cfg.seeds)
  kind = controller_kind(cfg.controller)
  opt, signals = frozen_controller(cfg.controller, steps,
                                   task.dataset.num_classes)
  print(f"{kind} from {cfg.controller}, frozen, on {task.name} "
        f"({task.dataset.name}, {task.dataset.num_train} training images), "
        f"{steps} steps of batch {task.batch_size}, seeds {list(cfg.seeds)}",
        flush=True)
  hists = {}
  _, hists[f"{kind} (frozen)"] = train_population(
      task, lambda _: opt, None, keys, steps, signals=signals,
      eval_every=cfg.train.eval_every,
      eval_examples=cfg.train.eval_examples or None, progress=not quiet)
  tuned_lr = {}
  for kind_b in cfg.baselines:
    lr, val_by_lr, hist = tune_schedule(
        task, kind_b, cfg.lr_grid, steps, cfg.seeds,
        optimizer=cfg.optimizer.name, momentum=cfg.optimizer.momentum,
        weight_decay=cfg.optimizer.weight_decay,
        eval_every=cfg.train.eval_every,
        eval_examples=cfg.train.eval_examples, quiet=quiet)
    name = f"{kind_b} (tuned lr={lr:g})"
    hists[name], tuned_lr[kind_b] = hist, lr
    by_lr = {float(lr): round(float(v), 4)
             for lr, v in zip(cfg.lr_grid, val_by_lr)}
    print(f"  {kind_b}: mean val acc by peak lr {by_lr}", flush=True)

  rows, metrics, curves = [], [], {}
  for name, h in hists.items():
    rows.append([name, res.mean_std(h.final("test_acc")),
                 res.mean_std(h.final("val_acc")), f"{h.wall_time:.1f}"])
    metrics += res.eval_records(name, cfg.seeds, h)
    curves[name] = res.curve(h)
  res.write_jsonl(out / "metrics.jsonl", metrics)
  table = res.markdown_table(["method", "test acc", "val acc", "wall s"],
                             rows)
  note = (f"Frozen {kind} from `{cfg.controller}` on {task.dataset.name} / "
          f"{cfg.task.model}, {task.dataset.num_train} training images, "
          f"{steps} steps of batch {task.batch_size}; baselines "
          f"{cfg.optimizer.name} (momentum {cfg.optimizer.momentum}, weight "
          f"decay {cfg.optimizer.weight_decay}) with the peak rate tuned over "
          f"{list(cfg.lr_grid)} on validation accuracy; mean ± std over seeds "
          f"{list(cfg.seeds)}; backend {jax.default_backend()}.")
  (out / "summary.md").write_text(f"# {cfg.name}\n\n{note}\n\n{table}")
  res.plot_runs(out / "curves.png", curves, cfg.name)
  print(f"\n{note}\n\n{table}\nresults written to {out}/")
  ctl = float(np.mean(hists[f"{kind} (frozen)"].final("test_acc")))
  summary = {"results_dir": str(out), "controller": kind, "steps": steps,
             "test_acc": {n: float(np.mean(h.final("test_acc")))
                          for n, h in hists.items()},
             "tuned_lr": tuned_lr}
  for kind_b in cfg.baselines:
    b = summary["test_acc"][f"{kind_b} (tuned lr={tuned_lr[kind_b]:g})"]
    summary[f"gap_to_tuned_{kind_b}"] = round(100 * (ctl - b), 2)
  print(json.dumps(summary))
  return summary
