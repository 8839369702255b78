"""The `lrmeta train` job: controllers compared on one task, seeds vmapped."""

from __future__ import annotations

import json

import jax

from lrmeta.experiments import results as res
from lrmeta.experiments.baselines import seed_keys
from lrmeta.experiments.config import check_range
from lrmeta.experiments.optim import method_optimizer
from lrmeta.tasks import make_task
from lrmeta.train import loss_signal, train_population


def build_task(cfg, model_kwargs: dict | None = None):
  """The task a config describes (shared by every job); ``model_kwargs``
  (e.g. layer widths) go to the model constructor."""
  check_range(cfg, "task.batch_size", 1)
  check_range(cfg, "task.label_noise", 0.0, 1.0)
  check_range(cfg, "task.num_val", 1)
  data_kwargs = {"num_val": cfg.task.num_val, "seed": cfg.task.data_seed,
                 "label_noise": cfg.task.label_noise,
                 "max_train": cfg.task.max_train or None}
  if cfg.task.data_dir:
    data_kwargs["data_dir"] = cfg.task.data_dir
  return make_task(cfg.task.dataset, cfg.task.model,
                   batch_size=cfg.task.batch_size, data_kwargs=data_kwargs,
                   model_kwargs=model_kwargs)


def num_steps(cfg, task) -> int:
  check_range(cfg, "train.epochs", 1e-6)
  return max(1, int(round(cfg.train.epochs * task.dataset.num_train /
                          task.batch_size)))


def run(cfg, *, quiet: bool = False) -> dict:
  """Trains every method in ``cfg.methods`` over ``cfg.seeds``.

  Seeds of one method train as one vmapped population. Writes the results
  folder (config.json, metrics.jsonl, history.csv, summary.md, curves.png)
  and returns the summary rows.
  """
  task = build_task(cfg)
  steps = num_steps(cfg, task)
  out = res.run_dir(cfg.output_dir)
  res.write_config(out, cfg)
  keys = seed_keys(cfg.seeds)
  rows, metrics, history, curves = [], [], [], {}
  for name in cfg.methods:
    signals = loss_signal
    if name.startswith("ckpt:"):  # a saved controller also names its signals
      from lrmeta.experiments.evaluate_job import frozen_controller  # pylint: disable=import-outside-toplevel
      opt, signals = frozen_controller(name[len("ckpt:"):], steps,
                                       task.dataset.num_classes)
    else:
      opt = method_optimizer(name, optimizer=cfg.optimizer.name,
                             learning_rate=cfg.learning_rate,
                             momentum=cfg.optimizer.momentum,
                             weight_decay=cfg.optimizer.weight_decay,
                             num_steps=steps)
    _, hist = train_population(
        task, lambda _, opt=opt: opt, None, keys, steps, signals=signals,
        eval_every=cfg.train.eval_every,
        eval_examples=cfg.train.eval_examples or None, progress=not quiet)
    test_acc = hist.final("test_acc")
    rows.append({"method": name, "test_acc": res.mean_std(test_acc),
                 "val_acc": res.mean_std(hist.final("val_acc")),
                 "test_loss": res.mean_std(hist.final("test_loss")),
                 "wall_s": f"{hist.wall_time:.1f}"})
    metrics += res.eval_records(name, cfg.seeds, hist)
    for i, seed in enumerate(cfg.seeds):
      for t in range(steps):
        history.append({"method": name, "seed": int(seed), "step": t + 1,
                        **{k: float(v[i, t]) for k, v in hist.steps.items()}})
    curves[name] = res.curve(hist)
  res.write_jsonl(out / "metrics.jsonl", metrics)
  res.write_csv(out / "history.csv", history)
  header = ["method", "test acc", "val acc", "test loss", "wall s"]
  table = res.markdown_table(header, [list(r.values()) for r in rows])
  note = (f"{task.dataset.name}, model {cfg.task.model}, "
          f"{task.dataset.num_train} training images, {steps} steps of batch "
          f"{task.batch_size} ({cfg.train.epochs} epochs), "
          f"{cfg.optimizer.name} lr {cfg.learning_rate}, seeds "
          f"{list(cfg.seeds)} (mean ± std), backend {jax.default_backend()}.")
  (out / "summary.md").write_text(f"# {cfg.name}\n\n{note}\n\n{table}")
  res.plot_runs(out / "curves.png", curves, cfg.name)
  print(f"\n{note}\n\n{table}\nresults written to {out}/")
  summary = {"results_dir": str(out), "steps": steps,
             "test_acc": {r["method"]: r["test_acc"] for r in rows}}
  print(json.dumps(summary))
  return summary
