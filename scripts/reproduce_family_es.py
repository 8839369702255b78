"""Meta-training that learns on a CPU: whole-run ES on the task family.

Runs, on the family of cheap training runs (``lrmeta.tasks.family``):

1. Known-answer checks on real data: ES over one meta-parameter (the log of
   a constant SGD rate) on one instance against a dense grid of the same
   objective, and ES over HD's two rates against a 2-D grid.
2. MLR-SNet (the paper's LSTM) meta-trained by whole-run ES from three
   meta-training seeds, plus a 4-pair ablation, and HD's two rates
   meta-trained the same way; the ES signal check (cosine of two
   independent estimates at the initial theta) for each.
3. The held-out protocol: every method on the family's held-out instances
   with paired seeds against constant, step, cosine and warm-up + cosine
   tuned per instance and once for the family.
4. Frozen transfer of the same methods to the small CNN on full-size
   Fashion-MNIST and ResNet-8 on the CIFAR-10 JPEG copy (``cfg.transfer``),
   every tunable rate tuned on validation, paired test seeds, written to
   ``transfer.md`` (``--skip-transfer`` leaves it out; ``--transfer-only``
   runs it alone from the controllers a previous run saved in ``--out``).

``--known-answer-only`` runs step 1 alone (``known_answer.png`` and
``known_answer.json`` with both grids and ES paths). ``--signal-pairs N``
runs only the ES signal check at MLR-SNet's initial theta with ``N`` pairs
per estimate (in calls of 256 pairs), its cosine after 256, 512, ... pairs
beside the noise-free expectation ``N / (N + d + 1)`` (``signal_check.png``
and ``signal_check.json``).

The last line is JSON with ``meta_objective_first`` / ``meta_objective_last``
(per seed), ``es_cosine``, ``heldout_vs_family_cosine`` and
``heldout_vs_instance_cosine`` (``{"mean", "ci_low", "ci_high"}`` in
test-accuracy points, MLR-SNet meta-trained minus cosine),
``transfer_cnn_vs_cosine`` / ``transfer_cifar_vs_cosine`` (every method
minus tuned cosine) and the rest.

  python scripts/reproduce_family_es.py --small   # 2 CPU cores, < 30 min
  python scripts/reproduce_family_es.py           # GPU-sized
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import ml_collections

from lrmeta import learned
from lrmeta.controllers.hypergradient import hd_sgd
from lrmeta.controllers.self_adaptive import self_adaptive_sgd
from lrmeta.experiments import diagnostics, heldout, report
from lrmeta.experiments import results as res
from lrmeta.experiments.config import load_config
from lrmeta.experiments.family_loop import meta_train_saved
from lrmeta.experiments.transfer import (report_section, transfer_note,
                                         transfer_stage)
from lrmeta.learned import hypergradient as hd_kind
from lrmeta.protocol import (DEFAULT_BASELINES, Method, family_differences,
                             interval)

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = {"mlr": "MLR-SNet (meta-trained)", "mlr0": "MLR-SNet (untrained)",
         "hd_meta": "HD (meta-trained rates)", "hd": "HD (hyper_lr 1e-3)",
         "sa": "self-adaptive"}


# -- transfer ------------------------------------------------------------------


def saved_runs(cfg, out: pathlib.Path) -> tuple[dict, dict]:
  """MLR-SNet (seed 0, with its initialisation) and HD as a previous run
  saved them under ``out``."""
  def one(folder, seed):
    saved = learned.load(str(out / folder / "controller"))
    kind = learned.get(saved.config["controller"])
    return {"config": saved.config, "theta": saved.theta,
            "theta0": kind.init(jax.random.key(seed), saved.config)}
  return one("mlr_snet_s0", 0), one("hypergradient", cfg.seed)


def transfer(cfg, out: pathlib.Path, mlr: dict, hd: dict) -> dict:
  """Every method frozen on ``cfg.transfer``'s tasks against the four tuned
  baselines; writes ``transfer.md``; returns the paired intervals."""
  at = heldout.controller_at
  methods = {
      NAMES["mlr"]: lambda steps: at(mlr["config"], mlr["theta"], steps),
      NAMES["mlr0"]: lambda steps: at(mlr["config"], mlr["theta0"], steps),
      NAMES["hd_meta"]: lambda steps: at(hd["config"], hd["theta"], steps),
      NAMES["hd"]: lambda steps: Method(
          lambda lr: hd_sgd(lr, 1e-3, momentum=0.9)),
      NAMES["sa"]: lambda steps: Method(
          lambda lr: self_adaptive_sgd(lr, momentum=0.9)),
  }
  found, md = {}, ["# Frozen transfer of the family-trained controllers", ""]
  for name in cfg.transfer.tasks:
    section = cfg.transfer[name]
    print(f"   {section.dataset} / {section.model}: {section.steps} steps of "
          f"batch {section.batch_size}", flush=True)
    stage = transfer_stage(
        section, methods, momentum=cfg.test.momentum,
        baselines=DEFAULT_BASELINES,
        log=lambda s: print(f"   {s}", flush=True))
    found[f"transfer_{name}_vs_cosine"] = stage["vs_cosine"]
    print(f"   {transfer_note(section, stage, list(stage['vs_cosine']))}",
          flush=True)
    title, note, table = report_section(section, stage)
    md += [f"## {title.split(': ', 1)[1]}", "", note, "", table, ""]
    (out / "transfer.md").write_text("\n".join(md))  # after every task
  return found


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--small", action="store_true",
                 help="2 CPU cores, within 30 minutes")
  p.add_argument("--seeds", type=int, default=3,
                 help="MLR-SNet meta-training seeds")
  p.add_argument("--out", default=None)
  p.add_argument("--skip-transfer", action="store_true",
                 help="leave out the frozen transfer stage")
  p.add_argument("--transfer-only", action="store_true",
                 help="only the transfer stage, from the controllers a "
                      "previous run saved in --out")
  p.add_argument("--known-answer-only", action="store_true",
                 help="only the two known-answer checks")
  p.add_argument("--signal-pairs", type=int, default=0,
                 help="only the ES signal check at MLR-SNet's initial "
                      "theta, with this many pairs per estimate")
  p.add_argument("--transfer-tasks", default=None,
                 help="comma-separated transfer tasks (default: the "
                      "config's, cnn,cifar)")
  args = p.parse_args(argv)
  variant = "small" if args.small else ""
  cfg = load_config(str(ROOT / "configs" / f"family_es.py:{variant}"))
  if args.transfer_tasks:
    cfg.transfer.tasks = tuple(args.transfer_tasks.split(","))
  out = pathlib.Path(args.out or cfg.output_dir.replace("family_es",
                                                        "reproduce_family_es"))
  out.mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  summary: dict = {"variant": variant or "full",
                   "backend": jax.default_backend()}
  if args.signal_pairs:
    print(f"ES signal check, {args.signal_pairs} pairs per estimate",
          flush=True)
    summary["signal_check"] = diagnostics.signal_check(cfg, out,
                                                       args.signal_pairs)
    summary["seconds"] = {"signal_check": time.perf_counter() - t_start}
    print(json.dumps(summary, default=float))
    return
  if args.transfer_only:
    print("[4/4] frozen transfer (saved controllers)", flush=True)
    summary.update(transfer(cfg, out, *saved_runs(cfg, out)))
    summary["seconds"] = {"transfer": time.perf_counter() - t_start}
    (out / "summary_transfer.json").write_text(
        json.dumps(summary, indent=1, default=float))
    print((out / "transfer.md").read_text())
    print(json.dumps(summary, default=float))
    return

  print("[1/4] known-answer checks", flush=True)
  t0 = time.perf_counter()
  summary["known_answer"] = diagnostics.known_answers(
      out, pairs=16, seeds=32, steps=40 if args.small else 100)
  summary["seconds"] = {"known_answer": time.perf_counter() - t0}
  if args.known_answer_only:
    (out / "summary_known_answer.json").write_text(
        json.dumps(summary, indent=1, default=float))
    print(json.dumps(summary, default=float))
    return

  print("[2/4] meta-training on the family", flush=True)
  t0 = time.perf_counter()
  runs = {}
  for seed in range(args.seeds):
    c = ml_collections.ConfigDict(cfg.to_dict())
    c.seed = seed
    c.meta.cosine_check = seed == 0
    runs[f"mlr_snet seed {seed}"] = meta_train_saved(
        c, out / f"mlr_snet_s{seed}")
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.meta.es_pairs, c.meta.cosine_check = 4, True
  runs["mlr_snet 4 pairs"] = meta_train_saved(
      c, out / "mlr_snet_4pairs")
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.controller.name, c.controller.momentum = "hypergradient", 0.9
  c.meta.es_sigma, c.meta.lr = 0.2, 0.05
  runs["hypergradient"] = meta_train_saved(
      c, out / "hypergradient")
  summary["seconds"]["meta_train"] = time.perf_counter() - t0
  res.plot_family_meta(out / "meta_training.png",
                       {k: r["trace"] for k, r in runs.items()},
                       "whole-run ES on the task family")
  mlr_runs = [runs[f"mlr_snet seed {s}"] for s in range(args.seeds)]
  summary["meta_objective_first"] = [r["first"] for r in mlr_runs]
  summary["meta_objective_last"] = [r["last"] for r in mlr_runs]
  summary["meta_objective_falls"] = sum(r["last"] < r["first"]
                                        for r in mlr_runs)
  summary["es_cosine"] = mlr_runs[0]["es_cosine"]
  summary["ablation_pairs"] = {
      f"{cfg.meta.es_pairs} pairs": [mlr_runs[0]["first"],
                                     mlr_runs[0]["last"]],
      "4 pairs": [runs["mlr_snet 4 pairs"]["first"],
                  runs["mlr_snet 4 pairs"]["last"]],
      "es_cosine_4_pairs": runs["mlr_snet 4 pairs"]["es_cosine"]}
  hd_run = runs["hypergradient"]
  summary["hypergradient"] = {
      "first": hd_run["first"], "last": hd_run["last"],
      "es_cosine": hd_run["es_cosine"],
      "rates": list(hd_kind.rates(hd_run["theta"]))}

  print("[3/4] held-out protocol", flush=True)
  t0 = time.perf_counter()
  mlr0 = mlr_runs[0]
  names = NAMES
  methods = {
      names["mlr"]: heldout.controller_method(mlr0["config"],
                                                 mlr0["theta"]),
      names["mlr0"]: heldout.controller_method(mlr0["config"],
                                                  mlr0["theta0"]),
      names["hd_meta"]: heldout.controller_method(hd_run["config"],
                                                     hd_run["theta"]),
      names["hd"]: heldout.tuned_method(
          lambda lr: hd_sgd(lr, 1e-3, momentum=0.9)),
      names["sa"]: heldout.tuned_method(
          lambda lr: self_adaptive_sgd(lr, momentum=0.9)),
  }
  results = heldout.judge(cfg, methods, quiet=True)
  summary["seconds"]["heldout"] = time.perf_counter() - t0
  summary.update(heldout.versus_cosine(results, names["mlr"]))
  summary["heldout"] = {}
  for n in results:
    for how in ("family", "instance"):
      d = family_differences(results, (n, "family"), ("cosine", how))
      summary["heldout"][f"{n} - cosine ({how})"] = {
          "acc": interval(d["pooled"]["acc"]),
          "loss": interval(d["pooled"]["loss"])}
  others = [(names[k], "family") for k in names] + [
      (n, how) for n in ("constant", "step", "warmup_cosine")
      for how in ("instance", "family")] + [("cosine", "instance")]
  table = res.write_family_table(out / "heldout.md", results,
                                 ("cosine", "family"), others)
  res.plot_family_rates(out / "rates.png", report.rate_curves(
      results, (names["mlr"], names["hd_meta"], "cosine")),
                        "learned rates vs family-tuned cosine, held-out "
                        "instances")
  summary["family_lr"] = {n: r.family_lr for n, r in results.items()}
  if not args.skip_transfer:
    print("[4/4] frozen transfer", flush=True)
    t0 = time.perf_counter()
    summary.update(transfer(cfg, out, mlr0, hd_run))
    summary["seconds"]["transfer"] = time.perf_counter() - t0
  summary["seconds"]["total"] = time.perf_counter() - t_start
  (out / "summary.json").write_text(json.dumps(summary, indent=1,
                                               default=float))
  print(table)
  print(f"results written to {out}/ ({summary['seconds']['total']:.0f} s)")
  print(json.dumps(summary, default=float))


if __name__ == "__main__":
  sys.exit(main())
