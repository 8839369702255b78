"""`lrmeta meta-train` on the task family: whole-run ES, then the held-out
protocol.

1. Meta-training (:mod:`lrmeta.experiments.family_loop`): ``theta`` of
   ``cfg.controller`` by whole-run antithetic ES over family instances,
   with the ES signal check (cosine of two independent estimates at the
   initial theta) and the validation meta-objective along the way.
2. Judging (:func:`lrmeta.experiments.compare.compare_family`): on every
   held-out shape of the family, ``cfg.test.seeds`` paired seeds, the frozen
   learned controller and its untrained initialisation against constant,
   step, cosine and warm-up + cosine, whose peak rate is tuned per instance
   and once for the whole family (grid ``grid_low * sqrt(2)**k``, widened
   at an edge).

The results folder holds ``config.json``, ``meta_metrics.jsonl``,
``summary.md``, ``summary.json``, ``heldout.md``, ``meta_training.png``,
``rates.png``, ``timings.json``, ``checkpoints/meta`` (resume) and
``checkpoints/controller`` (for ``lrmeta evaluate`` and ``ckpt:PATH``).
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import numpy as np

from lrmeta import learned
from lrmeta.experiments import results as res
from lrmeta.experiments.compare import (FamilyProtocol, Method,
                                        compare_family, family_differences,
                                        fixed, sqrt2_grid)
from lrmeta.experiments.family_loop import (SETUPS, build_family,
                                            meta_train_family,
                                            objective_first_last)
from lrmeta.experiments.optim import family_baselines
from lrmeta.tasks.family import HELD_OUT_SEED_BASE, Family, Instance

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


def controller_method(config: dict, theta: Any):
  """A saved-form controller as a fixed family method (built per shape's
  budget)."""
  kind = learned.get(config["controller"])

  def make(shape: Instance):
    return fixed(kind.optimizer(theta, config, shape.num_steps),
                 kind.signals(config, shape.num_steps))
  return make


def tuned_method(make_optimizer):
  """A family method whose base rate the protocol tunes
  (``make_optimizer(lr)``, the same for every shape)."""
  return lambda shape: Method(make_optimizer)


def tuned_controller_method(config: dict, theta: Any):
  """A saved-form controller whose base rate (``learning_rate=``) the
  protocol tunes, built per shape's budget."""
  kind = learned.get(config["controller"])

  def make(shape: Instance):
    return Method(lambda lr: kind.optimizer(theta, config, shape.num_steps,
                                            learning_rate=lr),
                  kind.signals(config, shape.num_steps))
  return make


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
  return compare_family(shapes, everything, protocol(cfg), quiet=quiet,
                        log=lambda s: print(f"  [held-out] {s}", flush=True))


def interval(d: dict) -> dict[str, float]:
  """``{"mean", "ci_low", "ci_high"}`` of a paired difference."""
  return {k: float(d[k]) for k in ("mean", "ci_low", "ci_high")}


def versus_cosine(results, name: str) -> dict[str, dict[str, float]]:
  """Pooled test-accuracy differences (points) of ``name`` against cosine
  tuned once for the family and per instance, each with ``name`` tuned the
  same way (the same result twice for a method without a tuned rate)."""
  return {f"heldout_vs_{how}_cosine": interval(family_differences(
      results, (name, how), ("cosine", how))["pooled"]["acc"])
          for how in ("family", "instance")}


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
    summary["seconds"]["heldout"] = time.perf_counter() - t0
    others = [(learned_name, "family"), (learned_name, "instance"),
              (init_name, "family")] + [
        (b, how) for b in ("constant", "step", "warmup_cosine")
        for how in ("instance", "family")] + [("cosine", "instance")]
    table = res.write_family_table(out / "heldout.md", results,
                                   ("cosine", "family"), others)
    res.plot_family_rates(out / "rates.png",
                          rate_curves(results, (learned_name, "cosine")),
                          f"{name} (meta-trained) vs family-tuned cosine on "
                          f"held-out instances")
    sections.append(("Held-out instances", _test_note(cfg, results), table))
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


def _test_note(cfg, results) -> str:
  lrs = {n: r.family_lr for n, r in results.items()
         if r.family_lr is not None}
  return (f"{len(next(iter(results.values())).per_instance)} held-out "
          f"shapes, {cfg.test.num_seeds} paired test seeds each; baselines on "
          f"SGD momentum {cfg.test.momentum}, peak rate tuned on mean final "
          f"validation accuracy over {cfg.test.num_tune_seeds} tuning seeds, per "
          f"instance and once for the family (family rates: "
          f"{ {n: round(v, 5) for n, v in lrs.items()} }).")


__all__ = ["controller_method", "heldout_shapes", "interval", "judge",
           "meta_train_saved", "protocol", "rate_curves", "run",
           "tuned_controller_method", "tuned_method", "versus_cosine"]
