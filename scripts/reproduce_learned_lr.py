"""The learned schedule: meta-trained on the task family, judged on held-out
instances and after transfer.

1. Meta-training (``configs/learned_lr.py``) by whole-run ES, staged: the
   knots alone first, then knots and feedback together; three
   meta-training seeds, with the ES signal check at the initial theta.
2. Ablations (seed 0): 4 instead of 32 pairs; a 40-step truncated objective
   instead of whole runs; knots only; K = 4 and K = 16 knots.
3. The held-out protocol: the learned schedule (its base rate tuned per
   instance and once for the family, like the baselines' peak rate) against
   constant, step, cosine and warm-up + cosine.
4. Transfer, frozen, with budgets longer than any seen in meta-training: the
   small CNN on full-size Fashion-MNIST and ResNet-8 on the CIFAR-10 JPEG
   copy, against cosine tuned on the same task (``lrmeta evaluate``'s
   protocol with the controller's base rate tuned too).

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

from lrmeta.experiments import evaluate_job, family_job
from lrmeta.experiments import results as res
from lrmeta.protocol import family_differences
from lrmeta.protocol.headroom import versus_hand
from lrmeta.experiments.config import load_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def staged(cfg, folder: pathlib.Path, stage1: int, stage2: int) -> dict:
  """Knots alone for ``stage1`` meta-steps, then knots and feedback for
  ``stage2`` (``stage2 == 0``: knots only); one combined trace."""
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.meta.perturb, c.meta.meta_steps = "knots", stage1
  first = family_job.meta_train_saved(c, folder / "stage1")
  if not stage2:
    return first
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.meta.meta_steps, c.meta.cosine_check = stage2, False
  second = family_job.meta_train_saved(c, folder / "stage2",
                                       theta0=first["theta"])
  trace = first["trace"] + [{**r, "meta_step": r["meta_step"] + stage1}
                            for r in second["trace"] if r["meta_step"] > 0]
  return {**second, "trace": trace, "first": first["first"],
          "es_cosine": first["es_cosine"], "theta0": first["theta0"],
          "seconds": first["seconds"] + second["seconds"]}


def variant(cfg, **changes) -> ml_collections.ConfigDict:
  """A copy of ``cfg`` with dotted ``changes`` (``meta__es_pairs=4``)."""
  c = ml_collections.ConfigDict(cfg.to_dict())
  for dotted, value in changes.items():
    section, key = dotted.split("__")
    c[section][key] = value
  return c


def transfer(task: str, controller_dir: str, out: pathlib.Path, *,
             steps: int, seeds: int, grid) -> dict:
  """``lrmeta evaluate`` on the small CNN (Fashion-MNIST) or ResNet-8
  (CIFAR-10 JPEG copy) with ``steps`` steps of batch 64; returns its
  summary."""
  cfg = load_config(str(ROOT / "configs" / "evaluate_transfer.py"))
  cfg.unlock()
  cfg.output_dir = str(out)
  cfg.controller = controller_dir
  cfg.tune_controller = True
  cfg.seeds = tuple(range(seeds))
  cfg.lr_grid = tuple(grid)
  cfg.optimizer.momentum = 0.9
  cfg.optimizer.weight_decay = 0.0
  if task == "cnn":
    cfg.task.dataset, cfg.task.model = "fashion_mnist", "small_cnn"
  cfg.task.batch_size = 64
  cfg.task.max_train = 0
  probe = evaluate_job.build_task(cfg)
  cfg.train.epochs = steps * cfg.task.batch_size / probe.dataset.num_train
  cfg.train.eval_every = steps
  cfg.train.eval_examples = 0
  return evaluate_job.run(cfg, quiet=True)


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
  stage1 = cfg.meta.meta_steps // 2
  stage2 = cfg.meta.meta_steps - stage1
  t_start = time.perf_counter()
  summary: dict = {"variant": "small" if small else "full",
                   "backend": jax.default_backend(), "seconds": {}}

  print("[1/4] meta-training the learned schedule", flush=True)
  t0 = time.perf_counter()
  seeds = {}
  for seed in range(args.seeds):
    c = variant(cfg, meta__cosine_check=seed == 0)
    c.seed = seed
    seeds[seed] = staged(c, out / f"seed{seed}", stage1, stage2)
  summary["meta_objective_first"] = [r["first"] for r in seeds.values()]
  summary["meta_objective_last"] = [r["last"] for r in seeds.values()]
  summary["meta_objective_falls"] = sum(r["last"] < r["first"]
                                        for r in seeds.values())
  summary["es_cosine"] = seeds[0]["es_cosine"]
  summary["seconds"]["meta_train"] = time.perf_counter() - t0

  print("[2/4] ablations", flush=True)
  t0 = time.perf_counter()
  ablations = {
      "4 pairs": staged(variant(cfg, meta__es_pairs=4,
                                meta__cosine_check=True),
                        out / "ablate_4pairs", stage1, stage2),
      "40-step truncation": staged(variant(cfg, meta__truncate=40),
                                   out / "ablate_truncated", stage1, stage2),
      "knots only": staged(cfg, out / "ablate_knots_only",
                           stage1 + stage2, 0),
      "K = 4": staged(variant(cfg, controller__num_knots=4),
                      out / "ablate_k4", stage1, stage2),
      "K = 16": staged(variant(cfg, controller__num_knots=16),
                       out / "ablate_k16", stage1, stage2)}
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
  name, fixed_name = "learned schedule", "learned schedule (lr_base 0.05)"
  results = family_job.judge(cfg, {
      name: family_job.tuned_controller_method(best["config"], best["theta"]),
      fixed_name: family_job.controller_method(best["config"],
                                               best["theta"])}, quiet=True)
  summary["seconds"]["heldout"] = time.perf_counter() - t0
  for how in ("family", "instance"):
    d = family_differences(results, (name, how), ("cosine", how))["pooled"]
    summary[f"heldout_vs_{how}_cosine"] = family_job.interval(d["acc"])
    summary[f"heldout_vs_{how}_cosine_loss"] = family_job.interval(d["loss"])
  summary.update(versus_hand(results, name))  # best hand schedule (validation)
  summary["family_lr"] = {n: r.family_lr for n, r in results.items()}
  others = [(name, "family"), (name, "instance"), (fixed_name, "family")] + [
      (b, how) for b in ("constant", "step", "warmup_cosine")
      for how in ("instance", "family")] + [("cosine", "instance")]
  table = res.write_family_table(out / "heldout.md", results,
                                 ("cosine", "family"), others)
  curves = family_job.rate_curves(results, (name, "cosine"))
  res.plot_family_rates(out / "rates.png", curves,
                        "learned schedule vs family-tuned cosine "
                        "(held-out instances)")
  plot_knots(out / "knots.png", {f"seed {s}": r["theta"]["knots"]
                                 for s, r in seeds.items()})
  print(table, flush=True)

  if not args.skip_transfer:
    print("[4/4] transfer", flush=True)
    t0 = time.perf_counter()
    ctl = str(out / "seed0" / "stage2" / "controller")
    grid = (0.025, 0.05, 0.1) if small else (0.0125, 0.025, 0.05, 0.1, 0.2)
    cnn = transfer("cnn", ctl, out / "transfer_cnn",
                   steps=800 if small else 2000, seeds=10, grid=grid)
    summary["transfer_cnn_vs_cosine"] = cnn["vs_tuned_cosine"]
    summary["transfer_cnn"] = cnn
    if args.cifar if args.cifar is not None else not small:
      cifar = transfer("cifar", ctl, out / "transfer_cifar",
                       steps=800 if small else 2000,
                       seeds=3 if small else 10, grid=grid)
      summary["transfer_cifar_vs_cosine"] = cifar["vs_tuned_cosine"]
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
