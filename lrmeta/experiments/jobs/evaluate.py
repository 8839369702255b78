"""The `lrmeta evaluate` job: a saved controller, frozen, on any task.

The plug-and-play use of a learned controller (MLR-SNet's headline claim;
the RL policy's transfer): load it from the folder :func:`lrmeta.learned.save`
wrote (build), apply it with no further training to every section of the
config's ``transfer`` block (another dataset, architecture or budget; the
schema :mod:`lrmeta.experiments.transfer` reads) against hand-designed
schedules (the section's ``baselines``, by default every baseline of
:data:`lrmeta.protocol.DEFAULT_BASELINES`) whose peak rate is tuned on the
same task's validation split with tune seeds disjoint from the test seeds,
same budget and test seeds (judge: the one transfer stage); the verdict is
against the best baseline (:func:`lrmeta.protocol.versus_best`); report.

The results folder holds ``config.json``, ``metrics.jsonl``, ``summary.md``,
``summary.json``, ``timings.json`` and ``curves.png`` (``curves_<name>.png``
per section when there are several).
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import jax

from lrmeta import learned, pretrained
from lrmeta.experiments import report
from lrmeta.experiments import results as res
from lrmeta.experiments.config import ConfigError
from lrmeta.experiments.transfer import run_transfers
from lrmeta.protocol import Method, fixed


def frozen_methods(saved, label: str, tune: bool):
  """``task -> {label: steps -> Method}``: the saved controller as run on
  a task, as saved or with its base rate tuned like the baselines' peak
  rate."""
  def methods_for(task):
    classes = task.dataset.num_classes

    def make(steps):
      frozen = saved.frozen(steps, num_classes=classes)
      if not tune:
        return fixed(*frozen)
      return Method(lambda lr: saved.controller.optimizer(
          saved.theta, saved.config, steps, learning_rate=lr,
          num_classes=classes), frozen.signals)
    return {label: make}
  return methods_for


def controller_labels(cfg) -> dict[str, Any]:
  """``label -> saved controller`` of ``cfg.controller``: one folder (or a
  shipped controller, ``pretrained:NAME``), or several separated by commas,
  judged side by side on the same runs of the baselines (each label then
  names its folder)."""
  folders = [f.strip() for f in str(cfg.controller).split(",") if f.strip()]
  if not folders:
    raise ConfigError("config key 'controller' is empty: give the folder of "
                      "a saved controller, e.g. --config.controller=results/"
                      "mlrsnet_fmnist/checkpoints/controller")
  how = "frozen, base rate tuned" if cfg.tune_controller else "frozen"
  out = {}
  for f in folders:
    saved = (pretrained.load(f[len(pretrained.PREFIX):])
             if f.startswith(pretrained.PREFIX) else learned.load(f))
    name = "" if len(folders) == 1 else f", {pathlib.Path(f).name}"
    label = f"{saved.kind} ({how}{name})"
    if label in out:
      raise ConfigError(f"two controllers in 'controller' share the label "
                        f"{label!r}: give folders with different names")
    out[label] = saved
  return out


def run(cfg, *, quiet: bool = False) -> dict:
  """Applies ``cfg.controller`` (one folder, or several separated by
  commas) frozen to every section of ``cfg.transfer`` against its tuned
  baselines; writes the results folder and returns the summary (printed as
  the last line)."""
  saved_by_label = controller_labels(cfg)
  label = ", ".join(saved_by_label)
  kinds = ", ".join(dict.fromkeys(s.kind for s in saved_by_label.values()))

  def methods_for(task):
    return {n: m for lab, saved in saved_by_label.items()
            for n, m in frozen_methods(saved, lab, cfg.tune_controller)(
                task).items()}

  with res.results_folder(cfg.output_dir) as out:
    t0 = time.perf_counter()
    res.write_config(out, cfg)
    print(f"{kinds} from {cfg.controller}, frozen, on "
          f"{list(cfg.transfer.tasks)}; backend {jax.default_backend()}",
          flush=True)
    summary = {"results_dir": str(pathlib.Path(cfg.output_dir)),
               "controller": kinds, "method": label, "seconds": {}}
    sections: list = []
    stages = run_transfers(
        cfg, methods_for, summary,
        sections, quiet=quiet, optimizer=cfg.optimizer.name,
        momentum=cfg.optimizer.momentum,
        weight_decay=cfg.optimizer.weight_decay)
    metrics = []
    for name, stage in stages.items():
      metrics += report.metric_records(
          stage["results"], task=None if len(stages) == 1 else name)
      res.plot_runs(out / report.transfer_figure(name, list(stages),
                                                 "curves"),
                    {n: res.curve(r.hist) for n, r in stage["results"].items()},
                    f"{label} on {stage['task'].name}")
    res.write_jsonl(out / "metrics.jsonl", metrics)
    summary["seconds"]["total"] = time.perf_counter() - t0
    text = res.write_summary(out, cfg.name, sections)
    res.write_timings(out, summary["seconds"])
    (out / "summary.json").write_text(json.dumps(summary, indent=1,
                                                 default=float))
    print(f"\n{text}\nresults written to {cfg.output_dir}/", flush=True)
  print(json.dumps(summary, default=float))
  return summary
