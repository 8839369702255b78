"""The learned schedule: meta-trained on the task family, judged on held-out
instances and after transfer.

1. Meta-training (``configs/learned_lr.py``) by whole-run ES in two stages
   (``meta.stages``): the knots alone first, then knots and feedback; three
   meta-training seeds, with the ES signal check at the initial theta.
2. Ablations (seed 0): 4 instead of 32 pairs; a 40-step truncated objective
   instead of whole runs; knots only; K = 4 and K = 16 knots.
3. The held-out protocol: the learned schedule (its base rate tuned per
   instance and once for the family, like the baselines' peak rate) against
   constant, step, cosine and warm-up + cosine.
4. Transfer, frozen, with budgets longer than any seen in meta-training: the
   small CNN on full-size Fashion-MNIST and ResNet-8 on the CIFAR-10 JPEG
   copy, against the default baselines tuned on the same task (the one
   transfer stage, :mod:`lrmeta.experiments.transfer`, with the
   controller's base rate tuned too).

The last line is JSON with ``meta_objective_first`` / ``meta_objective_last``
(per seed), ``es_cosine``, ``heldout_vs_family_cosine``,
``heldout_vs_instance_cosine``, ``heldout_vs_best_hand_family`` (against
the default baseline with the best family-tuned validation score),
``heldout_vs_best_hand_instance`` (against the per-instance oracle: per
shape, the baseline with the best validation score;
:func:`lrmeta.protocol.headroom.versus_hand`), ``transfer_cnn_vs_cosine`` and
``transfer_cifar_vs_cosine`` (``{"mean", "ci_low", "ci_high"}`` in
test-accuracy points, learned minus cosine), the ablations and timings.

  python scripts/reproduce_learned_lr.py --small   # 2 CPU cores
  python scripts/reproduce_learned_lr.py           # GPU-sized
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import ml_collections
import numpy as np

from lrmeta.experiments import heldout, report
from lrmeta.experiments import results as res
from lrmeta.experiments.config import load_config, transfer_section
from lrmeta.experiments.family_loop import meta_train_staged
from lrmeta.experiments.heldout import controller_at
from lrmeta.experiments.transfer import (stage_summary, transfer_note,
                                         transfer_stage)
from lrmeta.protocol import disjoint_tune_seeds, family_differences, interval
from lrmeta.protocol.headroom import versus_hand

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "learned schedule"
# Meta-training stages (meta.stages): the knots alone, then knots and
# feedback together; the knots-only ablation has one stage.
STAGED, KNOTS_ONLY = ("knots", ""), ("knots",)


def variant(cfg, **changes) -> ml_collections.ConfigDict:
  """A copy of ``cfg`` meta-trained in :data:`STAGED` stages, with dotted
  ``changes`` (``meta__es_pairs=4``)."""
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.meta.stages = STAGED
  for dotted, value in changes.items():
    section, key = dotted.split("__")
    c[section][key] = value
  return c


def transfer(task: str, best: dict, *, steps: int, seeds: int, grid
             ) -> dict:
  """The learned schedule (base rate tuned like the baselines' peak rate)
  frozen on the small CNN (Fashion-MNIST) or ResNet-8 (CIFAR-10 JPEG copy),
  ``steps`` steps of batch 64 on the whole training split, against the
  tuned default baselines (SGD momentum 0.9): one transfer stage; returns
  its summary record (:func:`lrmeta.experiments.transfer.stage_summary`)."""
  test_seeds = tuple(range(seeds))
  section = transfer_section(
      *(("fashion_mnist", "small_cnn") if task == "cnn" else
        ("cifar10", "resnet8")), 64, steps, tuple(grid), 1000,
      tune_seeds=disjoint_tune_seeds(test_seeds), test_seeds=test_seeds,
      eval_every=steps, executor="population")
  stage = transfer_stage(section, {NAME: lambda n: controller_at(
      best["config"], best["theta"], n, tune=True)}, momentum=0.9)
  print(f"   {transfer_note(section, stage, [NAME])}", flush=True)
  return stage_summary(stage)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--small", action="store_true",
                 help="2 CPU cores: fewer meta-steps, seeds and transfer "
                      "runs")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--skip-transfer", action="store_true")
  p.add_argument("--cifar", action=argparse.BooleanOptionalAction,
                 default=None, help="transfer to ResNet-8 on the CIFAR-10 "
                 "JPEG copy (default: on, off with --small: 800 ResNet-8 "
                 "steps per run do not fit its 30 minutes)")
  p.add_argument("--out", default=None)
  args = p.parse_args(argv)
  small = args.small
  cfg = load_config(str(ROOT / "configs" /
                        f"learned_lr.py:{'small' if small else ''}"))
  out = pathlib.Path(args.out or cfg.output_dir.replace(
      "learned_lr", "reproduce_learned_lr"))
  out.mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  summary: dict = {"variant": "small" if small else "full",
                   "backend": jax.default_backend(), "seconds": {}}

  print("[1/4] meta-training the learned schedule", flush=True)
  t0 = time.perf_counter()
  seeds = {}
  for seed in range(args.seeds):
    c = variant(cfg, meta__cosine_check=seed == 0, meta__stages=STAGED)
    c.seed = seed
    seeds[seed] = meta_train_staged(c, out / f"seed{seed}")
  summary["meta_objective_first"] = [r["first"] for r in seeds.values()]
  summary["meta_objective_last"] = [r["last"] for r in seeds.values()]
  summary["meta_objective_falls"] = sum(r["last"] < r["first"]
                                        for r in seeds.values())
  summary["es_cosine"] = seeds[0]["es_cosine"]
  summary["seconds"]["meta_train"] = time.perf_counter() - t0

  print("[2/4] ablations", flush=True)
  t0 = time.perf_counter()
  ablations = {
      label: meta_train_staged(variant(cfg, **changes), out / folder)
      for label, folder, changes in (
          ("4 pairs", "ablate_4pairs",
           {"meta__es_pairs": 4, "meta__cosine_check": True}),
          ("40-step truncation", "ablate_truncated", {"meta__truncate": 40}),
          ("knots only", "ablate_knots_only", {"meta__stages": KNOTS_ONLY}),
          ("K = 4", "ablate_k4", {"controller__num_knots": 4}),
          ("K = 16", "ablate_k16", {"controller__num_knots": 16}))}
  summary["ablations"] = {
      f"{cfg.meta.es_pairs} pairs, whole runs, K = "
      f"{cfg.controller.num_knots}, knots + feedback (seed 0)":
          {"first": seeds[0]["first"], "last": seeds[0]["last"]},
      **{k: {"first": r["first"], "last": r["last"],
             **({"es_cosine": r["es_cosine"]} if r["es_cosine"] is not None
                else {})} for k, r in ablations.items()}}
  summary["seconds"]["ablations"] = time.perf_counter() - t0
  res.plot_family_meta(out / "meta_training.png",
                       {**{f"seed {s}": r["trace"] for s, r in seeds.items()},
                        **{k: r["trace"] for k, r in ablations.items()}},
                       "learned schedule: whole-run ES on the task family")
  best = seeds[0]
  summary["knots"] = np.asarray(best["theta"]["knots"]).tolist()

  print("[3/4] held-out protocol", flush=True)
  t0 = time.perf_counter()
  name, fixed_name = NAME, "learned schedule (lr_base 0.05)"
  results = heldout.judge(cfg, {
      name: heldout.tuned_controller_method(best["config"], best["theta"]),
      fixed_name: heldout.controller_method(best["config"],
                                            best["theta"])}, quiet=True)
  summary["seconds"]["heldout"] = time.perf_counter() - t0
  for how in ("family", "instance"):
    d = family_differences(results, (name, how), ("cosine", how))["pooled"]
    summary[f"heldout_vs_{how}_cosine"] = interval(d["acc"])
    summary[f"heldout_vs_{how}_cosine_loss"] = interval(d["loss"])
  summary.update(versus_hand(results, name))  # best hand schedule (validation)
  summary["family_lr"] = {n: r.family_lr for n, r in results.items()}
  others = [(name, "family"), (name, "instance"), (fixed_name, "family")] + [
      (b, how) for b in ("constant", "step", "warmup_cosine")
      for how in ("instance", "family")] + [("cosine", "instance")]
  table = res.write_family_table(out / "heldout.md", results,
                                 ("cosine", "family"), others)
  curves = report.rate_curves(results, (name, "cosine"))
  res.plot_family_rates(out / "rates.png", curves,
                        "learned schedule vs family-tuned cosine "
                        "(held-out instances)")
  plot_knots(out / "knots.png", {f"seed {s}": r["theta"]["knots"]
                                 for s, r in seeds.items()})
  print(table, flush=True)

  if not args.skip_transfer:
    print("[4/4] transfer", flush=True)
    t0 = time.perf_counter()
    grid = (0.025, 0.05, 0.1) if small else (0.0125, 0.025, 0.05, 0.1, 0.2)
    cnn = transfer("cnn", best, steps=800 if small else 2000, seeds=10,
                   grid=grid)
    summary["transfer_cnn_vs_cosine"] = cnn["vs_cosine"][NAME]
    summary["transfer_cnn"] = cnn
    if args.cifar if args.cifar is not None else not small:
      cifar = transfer("cifar", best, steps=800 if small else 2000,
                       seeds=3 if small else 10, grid=grid)
      summary["transfer_cifar_vs_cosine"] = cifar["vs_cosine"][NAME]
      summary["transfer_cifar"] = cifar
    else:
      summary["transfer_cifar_vs_cosine"] = None
    summary["seconds"]["transfer"] = time.perf_counter() - t0
  summary["seconds"]["total"] = time.perf_counter() - t_start
  (out / "summary.json").write_text(json.dumps(summary, indent=1,
                                               default=float))
  print(f"results written to {out}/ ({summary['seconds']['total']:.0f} s)")
  print(json.dumps(summary, default=float))


def plot_knots(path: pathlib.Path, knots: dict) -> None:
  """The learned knots, ``exp(s(u))`` = lr / lr_base at the knot
  positions."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(5, 3.4))
  for label, k in knots.items():
    k = np.asarray(k, np.float64)
    ax.plot(np.linspace(0, 1, k.size), np.exp(k), marker="o", label=label)
  ax.axhline(1.0, color="grey", ls=":", lw=0.8)
  ax.set(yscale="log", xlabel="t / T", ylabel="lr / lr_base (knots)",
         title="learned knots")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  sys.exit(main())
