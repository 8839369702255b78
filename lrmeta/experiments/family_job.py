"""`lrmeta meta-train` on the task family: whole-run ES, then the held-out
protocol.

1. Meta-training (:mod:`lrmeta.experiments.family_loop`): ``theta`` of
   ``cfg.controller`` by whole-run antithetic ES over family instances,
   with the ES signal check (cosine of two independent estimates at the
   initial theta) and the validation meta-objective along the way.
2. Judging (:func:`lrmeta.protocol.compare_family`): on every held-out
   shape of the family, ``cfg.test.seeds`` paired seeds, the frozen learned
   controller and its untrained initialisation against the baselines of
   :data:`lrmeta.protocol.DEFAULT_BASELINES` (constant, step, cosine,
   warm-up + cosine, linear, WSD), whose peak rate is tuned per instance and
   once for the whole family (grid ``grid_low * sqrt(2)**k``, widened at an
   edge); the verdict is against the best baseline of each tuning
   (:func:`versus_baselines`).
3. Transfer (``cfg.transfer``, when enabled): the same two controllers,
   frozen, on the small CNN on full-size Fashion-MNIST and ResNet-8 on the
   CIFAR-10 JPEG copy against the baselines, every base rate tuned on
   validation (:func:`transfer_stage`), paired test seeds; summary keys
   ``transfer_<task>_vs_cosine`` and ``transfer_<task>_vs_best``.

The results folder holds ``config.json``, ``meta_metrics.jsonl``,
``summary.md``, ``summary.json``, ``heldout.md``, ``meta_training.png``,
``rates.png``, ``timings.json``, ``checkpoints/meta`` (resume) and
``checkpoints/controller`` (for ``lrmeta evaluate`` and ``ckpt:PATH``).
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lrmeta import learned
from lrmeta.experiments import results as res
from lrmeta.experiments.family_loop import (SETUPS, build_family,
                                            meta_train_family,
                                            objective_first_last)
from lrmeta.protocol import (DEFAULT_BASELINES, FamilyProtocol, Method,
                             Protocol, compare, compare_family, differences,
                             family_baselines, fixed, interval,
                             schedule_method, sqrt2_grid, versus_best)
from lrmeta.protocol.scoring import final_scores
from lrmeta.tasks import make_task
from lrmeta.tasks.family import (HELD_OUT_SEED_BASE, Family, Instance,
                                 instance_task)
# Held-out runs: test seeds from HELD_OUT_SEED_BASE, tuning seeds above them.
TUNE_SEED_OFFSET = 1_000


def heldout_shapes(family: Family) -> tuple[Instance, ...]:
  """The distinct shapes of the family's held-out instances."""
  return tuple(dict.fromkeys(i.shape for i in family.held_out()))


def protocol(cfg) -> FamilyProtocol:
  """The held-out protocol of ``cfg.test``."""
  t = cfg.test
  return FamilyProtocol(
      sqrt2_grid(t.grid_low, t.grid_points),
      tuple(HELD_OUT_SEED_BASE + TUNE_SEED_OFFSET + i
            for i in range(t.num_tune_seeds)),
      tuple(HELD_OUT_SEED_BASE + i for i in range(t.num_seeds)))


def controller_at(config: dict, theta: Any, steps: int, *,
                  tune: bool = False) -> Method:
  """A saved-form controller for a budget of ``steps``: as saved, or with its
  base rate (``learning_rate=``) left for the protocol to tune."""
  kind = learned.get(config["controller"])
  signals = kind.signals(config, steps)
  if not tune:
    return fixed(kind.optimizer(theta, config, steps), signals)
  return Method(lambda lr: kind.optimizer(theta, config, steps,
                                          learning_rate=lr), signals)


def controller_method(config: dict, theta: Any):
  """A saved-form controller as a fixed family method (built per shape's
  budget)."""
  return lambda shape: controller_at(config, theta, shape.num_steps)


def tuned_method(make_optimizer):
  """A family method whose base rate the protocol tunes
  (``make_optimizer(lr)``, the same for every shape)."""
  return lambda shape: Method(make_optimizer)


def tuned_controller_method(config: dict, theta: Any):
  """A saved-form controller whose base rate (``learning_rate=``) the
  protocol tunes, built per shape's budget."""
  return lambda shape: controller_at(config, theta, shape.num_steps,
                                     tune=True)


# -- frozen transfer -------------------------------------------------------------


def transfer_task(section):
  """The task of a transfer section (``dataset``, ``model`` at its default
  widths, ``batch_size``, ``num_val``, ``max_train``; 0: all)."""
  return make_task(section.dataset, section.model,
                   batch_size=section.batch_size,
                   data_kwargs={"num_val": section.num_val,
                                "max_train": section.max_train or None})


def accuracy_points(result) -> np.ndarray:
  """Final test accuracy per seed in points; a diverged run counts as 0
  (:func:`lrmeta.protocol.final_scores`)."""
  return 100 * final_scores(result.hist, "test")


def transfer_stage(section, methods: dict[str, Any], *, momentum: float,
                   baselines: Sequence[str] = DEFAULT_BASELINES,
                   log=None) -> dict:
  """Frozen methods on a transfer task against tuned baselines.

  Args:
    section: a transfer config section (:func:`transfer_task`'s keys plus
      ``steps``, ``lr_grid``, ``tune_seeds``, ``test_seeds``).
    methods: name -> ``steps -> Method`` (e.g. :func:`controller_at`).
    momentum: the baselines' SGD momentum.
    baselines: classic schedules, peak rate tuned like every tunable
      method's base rate (on validation, over ``lr_grid``); must include
      ``"cosine"``, the reference.
    log: progress lines (``None``: silent).

  Returns:
    ``{"task", "results" (:func:`compare`'s), "vs_cosine": name -> paired
    test-accuracy interval in points, "vs_best": name -> the same against
    the best baseline, with its name and verdict}``.
  """
  task = transfer_task(section)
  steps = int(section.steps)
  everything = {b: schedule_method(b, steps, momentum=momentum)
                for b in baselines}
  everything.update({n: make(steps) for n, make in methods.items()})
  protocol = Protocol(steps, tuple(section.lr_grid),
                      tuple(section.tune_seeds), tuple(section.test_seeds),
                      num_evals=1, executor="sequential")
  results = compare(task, everything, protocol, log=log)
  vs = {n: interval(differences(results, n, "cosine")["pooled"]["acc"])
        for n in results if n != "cosine"}
  best = {n: versus_best(results, n, baselines) for n in methods}
  return {"task": task, "results": results, "vs_cosine": vs, "vs_best": best}


def transfer_note(section, stage: dict, names: Sequence[str]) -> str:
  """One paragraph on a transfer stage: the task and the paired intervals
  of ``names`` against tuned cosine."""
  vs = "; ".join(f"{n} - cosine: {d['mean']:+.2f} [{d['ci_low']:+.2f}, "
                 f"{d['ci_high']:+.2f}] points"
                 for n, d in stage["vs_cosine"].items() if n in names)
  best = "; ".join(f"{n} - best baseline ({d['baseline']}): {d['mean']:+.2f} "
                   f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}], {d['verdict']}"
                   for n, d in stage.get("vs_best", {}).items() if n in names)
  return (f"{stage['task'].name} ({stage['task'].dataset.name}, "
          f"{section.max_train or 'all'} training images), "
          f"{section.steps} steps of "
          f"batch {section.batch_size}; base rates tuned on validation over "
          f"{tuple(section.lr_grid)} (seeds {tuple(section.tune_seeds)}); "
          f"{len(section.test_seeds)} paired test seeds. {vs}."
          + (f" {best}." if best else ""))


def meta_train_saved(cfg, folder: pathlib.Path, *, theta0: Any = None,
                     quiet: bool = True) -> dict:
  """One meta-training run (no held-out stage) into ``folder``, the
  controller saved under ``folder / "controller"``; returns
  :func:`meta_train_family`'s dict plus ``first`` / ``last`` validation
  meta-objective."""
  folder.mkdir(parents=True, exist_ok=True)
  print(f"== meta-training {folder.name}", flush=True)
  mt = meta_train_family(cfg, folder, quiet=quiet, theta0=theta0)
  learned.save(str(folder / "controller"), mt["theta"], mt["config"])
  first, last = objective_first_last(mt["trace"])
  cos = "" if mt["es_cosine"] is None else f"; es_cosine {mt['es_cosine']:.3f}"
  print(f"   validation meta-objective {first:.4f} -> {last:.4f} "
        f"({mt['seconds']:.0f}s{cos})", flush=True)
  return {**mt, "first": first, "last": last, "dir": str(folder)}


def judge(cfg, methods: dict, quiet: bool = False):
  """Baselines plus ``methods`` on the held-out shapes; returns
  ``compare_family``'s results."""
  shapes = heldout_shapes(build_family(cfg))
  everything = {**family_baselines(cfg.test.momentum), **methods}
  print(f"  {len(shapes)} held-out shapes x {cfg.test.num_seeds} seeds; "
        f"{len(everything)} methods", flush=True)
  return compare_family(shapes, everything, protocol(cfg),
                        task_fn=instance_task, quiet=quiet,
                        log=lambda s: print(f"  [held-out] {s}", flush=True))


def versus_cosine(results, name: str) -> dict[str, dict[str, float]]:
  """Pooled test-accuracy differences (points) of ``name`` against cosine
  tuned once for the family and per instance, each with ``name`` tuned the
  same way (the same result twice for a method without a tuned rate)."""
  return {f"heldout_vs_{how}_cosine": interval(differences(
      results, (name, how), ("cosine", how))["pooled"]["acc"])
          for how in ("family", "instance")}


def versus_baselines(results, name: str,
                     baselines: Sequence[str] = DEFAULT_BASELINES
                     ) -> dict[str, dict[str, Any]]:
  """``name`` against the best baseline tuned once for the family and per
  instance (:func:`lrmeta.protocol.versus_best`, pooled over (shape, seed)
  pairs): the verdict of a learned controller."""
  return {f"heldout_vs_{how}_best": versus_best(results, name, baselines, how)
          for how in ("family", "instance")}


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


def run(cfg, *, quiet: bool = False) -> dict:
  """Meta-trains on the family and judges on held-out instances; writes the
  results folder and prints (last) and returns the summary."""
  with res.results_folder(cfg.output_dir, keep=("checkpoints",)) as out:
    summary = _run(cfg, out, quiet)
  print(json.dumps(summary, default=float))
  return summary


def _run(cfg, out: pathlib.Path, quiet: bool) -> dict:
  t_start = time.perf_counter()
  res.write_config(out, cfg)
  name = cfg.controller.name
  print(f"[1/2] meta-training {name} on the task family by whole-run ES "
        f"({cfg.meta.es_pairs} pairs, sigma {cfg.meta.es_sigma}, "
        f"{cfg.meta.meta_steps} meta-steps)", flush=True)
  mt = meta_train_family(cfg, out, quiet)
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
  sections = [(None, _meta_note(cfg, mt, first, last), "")]
  if cfg.test.enabled:
    print("[2/2] held-out protocol", flush=True)
    t0 = time.perf_counter()
    learned_name, init_name = f"{name} (meta-trained)", f"{name} (untrained)"
    # A controller that scales a base rate has it tuned like the baselines'
    # peak rate (per instance and per family); the others run as saved.
    make = (tuned_controller_method if SETUPS[name].tune_base
            else controller_method)
    results = judge(cfg, {
        learned_name: make(mt["config"], mt["theta"]),
        init_name: make(mt["config"], mt["theta0"])}, quiet)
    summary.update(versus_cosine(results, learned_name))
    summary.update(versus_baselines(results, learned_name))
    summary["seconds"]["heldout"] = time.perf_counter() - t0
    others = [(learned_name, "family"), (learned_name, "instance"),
              (init_name, "family")] + baseline_rows()
    table = res.write_family_table(out / "heldout.md", results,
                                   ("cosine", "family"), others)
    res.plot_family_rates(out / "rates.png",
                          rate_curves(results, (learned_name, "cosine")),
                          f"{name} (meta-trained) vs family-tuned cosine on "
                          f"held-out instances")
    sections.append(("Held-out instances", test_note(cfg, results), table))
  if "transfer" in cfg and cfg.transfer.enabled:
    tune = SETUPS[name].tune_base
    methods = {
        label: (lambda steps, th=th: controller_at(mt["config"], th, steps,
                                                   tune=tune))
        for label, th in ((f"{name} (meta-trained)", mt["theta"]),
                          (f"{name} (untrained)", mt["theta0"]))}
    for task_name in cfg.transfer.tasks:
      section = cfg.transfer[task_name]
      print(f"[transfer] {section.dataset} / {section.model}: {section.steps} "
            f"steps of batch {section.batch_size}, controllers frozen",
            flush=True)
      t0 = time.perf_counter()
      stage = transfer_stage(section, methods, momentum=cfg.test.momentum,
                             log=None if quiet else print)
      summary["seconds"][f"transfer_{task_name}"] = time.perf_counter() - t0
      summary[f"transfer_{task_name}_vs_cosine"] = stage["vs_cosine"]
      summary[f"transfer_{task_name}_vs_best"] = stage["vs_best"]
      sections.append((f"Transfer: {stage['task'].name}",
                       transfer_note(section, stage, list(stage["vs_cosine"])),
                       res.markdown_table(
                           ["method", "tuned base lr", "test acc",
                            "test loss", "val acc"],
                           res.result_rows(stage["results"],
                                           ("test_acc", "test_loss",
                                            "val_acc")))))
  summary["seconds"]["total"] = time.perf_counter() - t_start
  text = res.write_summary(out, cfg.name, sections)
  res.write_timings(out, summary["seconds"])
  (out / "summary.json").write_text(json.dumps(summary, indent=1,
                                               default=float))
  print("\n" + text + f"\nresults written to {cfg.output_dir}/", flush=True)
  return summary


def _meta_note(cfg, mt, first, last) -> str:
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
  lrs = {n: r.family_lr for n, r in results.items()
         if r.family_lr is not None}
  return (f"{len(next(iter(results.values())).per_instance)} held-out "
          f"shapes, {cfg.test.num_seeds} paired test seeds each; baselines on "
          f"SGD momentum {cfg.test.momentum}, peak rate tuned on mean final "
          f"validation accuracy over {cfg.test.num_tune_seeds} tuning seeds, per "
          f"instance and once for the family (family rates: "
          f"{ {n: round(v, 5) for n, v in lrs.items()} }).")


__all__ = ["accuracy_points", "baseline_rows", "controller_at",
           "controller_method", "heldout_shapes", "interval", "judge",
           "meta_train_saved", "protocol", "rate_curves", "run",
           "test_note", "transfer_note", "transfer_stage", "transfer_task",
           "tuned_controller_method", "tuned_method", "versus_baselines",
           "versus_cosine"]
