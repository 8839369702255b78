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
import dataclasses
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lrmeta import learned
from lrmeta.controllers.hypergradient import hd_sgd
from lrmeta.controllers.self_adaptive import self_adaptive_sgd
from lrmeta.experiments import family_job
from lrmeta.experiments import family_loop
from lrmeta.experiments import results as res
from lrmeta.protocol import Method, family_differences, paired_difference
from lrmeta.experiments.config import load_config
from lrmeta.learned import hypergradient as hd_kind
from lrmeta.meta import MetaTrainer, meta_train
from lrmeta.meta.family_es import (VALIDATION_SEED_BASE, FamilyES,
                                   es_cosine_curve)
from lrmeta.tasks.family import Instance

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = {"mlr": "MLR-SNet (meta-trained)", "mlr0": "MLR-SNet (untrained)",
         "hd_meta": "HD (meta-trained rates)", "hd": "HD (hyper_lr 1e-3)",
         "sa": "self-adaptive"}
# Run seeds of the known-answer checks' confirmation runs: above every
# validation seed the checks use, below the held-out seeds.
FRESH_SEED_BASE = VALIDATION_SEED_BASE + 100_000


# -- known-answer checks -------------------------------------------------------


def constant_sgd(num_steps: int):
  """``theta -> SGD(momentum 0.9)`` at the constant rate ``exp(log_lr)``."""
  del num_steps
  return lambda theta: optax.sgd(jnp.exp(theta["log_lr"]), momentum=0.9)


def es_descent(est: FamilyES, theta0, steps: int, lr: float, seed: int):
  """Plain outer loop: Adam on ES estimates; returns the theta trajectory."""
  trainer = MetaTrainer([est], optax.adam(lr), clip_norm=None)
  thetas = []
  state, _ = meta_train(trainer, theta0, jax.random.key(seed), steps,
                        callback=lambda s, m: thetas.append(
                            jax.device_get(s.theta)))
  del state
  return thetas


def tail_mean(thetas, frac: float = 0.25):
  """Mean of the last ``frac`` of a theta trajectory (ES iterates jitter
  around the optimum)."""
  k = max(1, int(len(thetas) * frac))
  return jax.tree.map(lambda *x: np.mean(np.stack(x), 0), *thetas[-k:])


def known_answer_constant(instance: Instance, args) -> dict:
  shape = instance.shape
  est = FamilyES(constant_sgd, (shape,), num_pairs=args.ka_pairs, sigma=0.1,
                 shapes_per_step=1)
  val = est.validation_instances(args.ka_seeds)
  rates = 0.01 * 2.0 ** (np.arange(0, 33) / 4)  # 0.01 .. 2.56, 2^(1/4) apart
  grid = est.grid_fitness([{"log_lr": np.float32(np.log(r))} for r in rates],
                          val).mean(1)
  best = float(rates[int(np.nanargmin(grid))])
  thetas = es_descent(est, {"log_lr": jnp.float32(np.log(0.01))},
                      args.ka_steps, 0.1, 0)
  found = float(np.exp(tail_mean(thetas)["log_lr"]))
  ratio = found / best
  return {"instance": shape.name, "grid_best_lr": best,
          "es_lr": found, "ratio": ratio,
          "within_1_5x": bool(1 / 1.5 <= ratio <= 1.5),
          "grid_rates": rates.tolist(), "grid_objective": grid.tolist(),
          "es_trace": [float(np.exp(t["log_lr"])) for t in thetas]}


def known_answer_hd(instance: Instance, args) -> dict:
  """ES over HD's (log initial rate, log hypergradient rate) against a 2-D
  grid of the same objective.

  The objective is nearly flat around HD's defaults (1e-3, 1e-3) and has a
  narrow valley (initial rate and hypergradient rate trade off) walled by
  divergence. ES follows the Gaussian-smoothed objective, so it runs in two
  phases: a wide sigma (0.5 in log units) that crosses the flat region, then
  a narrow one (0.15) whose smoothing no longer pulls the optimum away from
  the wall. The grid's minimum over 198 cells is biased low by its own
  noise, so both points are also scored on fresh run seeds."""
  shape = instance.shape
  make = family_loop.optimizer_for_budget(hd_kind.config(momentum=0.9))
  est = FamilyES(make, (shape,), num_pairs=2 * args.ka_pairs, sigma=0.5,
                 shapes_per_step=1)
  val = est.validation_instances(args.ka_seeds)
  lrs = 1e-3 * 2.0 ** (np.arange(0, 18) / 2)    # 1e-3 .. 0.36, sqrt(2) apart
  betas = 1e-4 * 2.0 ** np.arange(0, 11)        # 1e-4 .. 0.1, 2x apart
  thetas = [hd_kind.theta_of(a, b) for a in lrs for b in betas]
  grid = est.grid_fitness(thetas, val).mean(1).reshape(len(lrs), len(betas))
  i, j = np.unravel_index(int(np.nanargmin(grid)), grid.shape)
  wide = es_descent(est, hd_kind.theta_of(1e-3, 1e-3), 2 * args.ka_steps,
                    0.1, 1)
  narrow = es_descent(dataclasses.replace(est, sigma=0.15),
                      jax.tree.map(jnp.asarray, tail_mean(wide)),
                      2 * args.ka_steps, 0.05, 2)
  lr_es, beta_es = hd_kind.rates(tail_mean(narrow))
  es_theta = hd_kind.theta_of(lr_es, beta_es)
  es_obj = float(np.mean(est.fitness(es_theta, val)))
  fresh = tuple(dataclasses.replace(shape, seed=FRESH_SEED_BASE + k)
                for k in range(4 * args.ka_seeds))
  both = est.grid_fitness([thetas[i * len(betas) + j], es_theta], fresh)
  diff = paired_difference(both[1], both[0])
  ratios = (lr_es / lrs[i], beta_es / betas[j])
  return {"instance": shape.name, "grid_best": [float(lrs[i]),
                                               float(betas[j])],
          "grid_best_objective": float(grid[i, j]), "es": [lr_es, beta_es],
          "es_objective": es_obj, "ratios": [float(r) for r in ratios],
          "within_1_5x": bool(all(1 / 1.5 <= r <= 1.5 for r in ratios)),
          "fresh_seeds": len(fresh),
          "fresh_es_minus_grid": diff,
          "es_trace": [hd_kind.rates(t) for t in wide + narrow],
          "grid_lrs": lrs.tolist(), "grid_betas": betas.tolist(),
          "grid_objective": grid.tolist()}


def known_answers(out: pathlib.Path, args) -> dict:
  """Both known-answer checks on one Fashion-MNIST instance (14x14, MLP 32,
  batch 64); writes ``known_answer.png`` and returns their summaries."""
  inst = Instance(dataset="fashion_mnist", pool=14, hidden=(32,),
                  batch_size=64, num_steps=200)
  const = known_answer_constant(inst, args)
  print(f"   constant rate: grid best {const['grid_best_lr']:.4g}, ES "
        f"{const['es_lr']:.4g} (ratio {const['ratio']:.3f})", flush=True)
  hd = known_answer_hd(dataclasses.replace(inst, num_steps=100), args)
  fresh = hd["fresh_es_minus_grid"]
  print(f"   HD (lr0, beta): grid best {hd['grid_best']} objective "
        f"{hd['grid_best_objective']:.4f}; ES {np.round(hd['es'], 5).tolist()}"
        f" objective {hd['es_objective']:.4f} (ratios "
        f"{np.round(hd['ratios'], 3).tolist()}); on {hd['fresh_seeds']} "
        f"fresh seeds ES - grid best {fresh['mean']:+.4f} "
        f"[{fresh['ci_low']:+.4f}, {fresh['ci_high']:+.4f}]", flush=True)
  plot_known_answers(out / "known_answer.png", const, hd)
  (out / "known_answer.json").write_text(
      json.dumps({"constant": const, "hd": hd}, default=float))
  bulky = ("grid_rates", "grid_lrs", "grid_betas", "grid_obj", "es_trace")
  return {name: {k: v for k, v in found.items() if not k.startswith(bulky)}
          for name, found in (("constant", const), ("hd", hd))}


def plot_known_answers(path: pathlib.Path, const: dict, hd: dict) -> None:
  """The two known-answer checks: the constant rate's grid with ES's result,
  and HD's 2-D grid (colour clipped to 0.1 above its best, so the valley
  shows) with ES's path through it."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  ax = axes[0]
  obj = np.asarray(const["grid_objective"], float)
  best = np.nanmin(obj)
  ax.plot(const["grid_rates"], np.clip(obj, None, best + 1.0), marker=".",
          label="dense grid (clipped at best + 1)")
  ax.axvline(const["grid_best_lr"], color="C0", ls=":", label="grid best")
  ax.axvline(const["es_lr"], color="C1", label="ES result")
  ax.set(xscale="log", xlabel="constant learning rate",
         ylabel="loss / reference loss", title="ES over log(rate)")
  ax.legend(fontsize=7)
  ax = axes[1]
  obj = np.asarray(hd["grid_objective"], float)
  best = np.nanmin(obj)
  lrs, betas = np.asarray(hd["grid_lrs"]), np.asarray(hd["grid_betas"])

  def cell(lr, beta):  # grid coordinates of a point (sqrt(2) and 2x steps)
    return np.log2(beta / betas[0]), 2 * np.log2(lr / lrs[0])

  im = ax.imshow(np.where(np.isfinite(obj), obj, np.nan), origin="lower",
                 aspect="auto", cmap="viridis", vmin=best, vmax=best + 0.1)
  fig.colorbar(im, ax=ax, label="objective (clipped at best + 0.1)")
  ax.set_xticks(range(len(betas)), [f"{b:.0e}" for b in betas], fontsize=6)
  ax.set_yticks(range(len(lrs)), [f"{a:.3g}" for a in lrs], fontsize=6)
  if hd.get("es_trace"):
    x, y = cell(*np.asarray(hd["es_trace"]).T)
    ax.plot(x, y, color="w", lw=0.8, alpha=0.8, label="ES path")
  ax.plot(*cell(*hd["grid_best"]), "ws", ms=7, mfc="none", label="grid best")
  ax.plot(*cell(*hd["es"]), "r*", ms=12, label="ES result")
  ax.set(xlabel="hypergradient rate", ylabel="initial rate",
         title="HD: ES over (log lr0, log beta); white: diverged")
  ax.legend(fontsize=7, facecolor="0.6")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# -- the ES signal check at scale ----------------------------------------------


def signal_check(cfg, out: pathlib.Path, pairs: int, chunk: int = 256
                 ) -> dict:
  """The cosine of two independent ES estimates at ``cfg.controller``'s
  initial theta, each over ``pairs`` antithetic pairs of whole runs (calls
  of ``chunk`` pairs on ``cfg.meta.shapes_per_step`` training shapes each),
  against the noise-free expectation ``N / (N + d + 1)``; writes
  ``signal_check.png`` and ``signal_check.json``."""
  config = family_loop.SETUPS[cfg.controller.name].config(cfg)
  theta0 = learned.get(config["controller"]).init(jax.random.key(cfg.seed),
                                                  config)
  shapes = family_loop.training_shapes(cfg, family_loop.build_family(cfg))
  est = family_loop.make_estimator(cfg, config, shapes,
                                   num_pairs=min(chunk, pairs))
  dims = int(sum(np.size(x) for x in jax.tree.leaves(theta0)))
  curve = es_cosine_curve(est, theta0, jax.random.key(cfg.seed + 7),
                          -(-pairs // est.num_pairs), progress=True)
  found = {"controller": cfg.controller.name, "dims": dims,
           "sigma": est.sigma,
           "curve": [{"pairs": n, "es_cosine": c,
                      "noise_free": n / (n + dims + 1)} for n, c in curve]}
  for row in found["curve"]:
    print(f"   {row['pairs']:>7} pairs: cosine {row['es_cosine']:+.4f} "
          f"(noise-free expectation {row['noise_free']:.4f})", flush=True)
  (out / "signal_check.json").write_text(json.dumps(found, indent=1))
  plot_signal_check(out / "signal_check.png", found)
  return found


def plot_signal_check(path: pathlib.Path, found: dict) -> None:
  """Measured cosine against pairs per estimate, beside the noise-free
  expectation and the +-2 / sqrt(d) band of two random directions."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  dims = found["dims"]
  n = np.asarray([r["pairs"] for r in found["curve"]], float)
  fig, ax = plt.subplots(figsize=(5.2, 3.6))
  grid = np.geomspace(n.min(), n.max(), 50)
  band = 2 / np.sqrt(dims)
  ax.fill_between(grid, -band, band, color="0.85",
                  label="two random directions (+-2 sd)")
  ax.plot(grid, grid / (grid + dims + 1), "--",
          label=f"noise-free N / (N + d + 1), d = {dims:,}")
  ax.plot(n, [r["es_cosine"] for r in found["curve"]], "o-",
          label="measured")
  ax.set_xscale("log", base=2)
  ax.set_xticks(n, [f"{int(v):,}" for v in n], fontsize=7)
  ax.minorticks_off()
  ax.set(xlabel="antithetic pairs per estimate",
         ylabel="cosine of two estimates",
         title=f"ES signal check: {found['controller']}, initial theta")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


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
  at = family_job.controller_at
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
    stage = family_job.transfer_stage(
        section, methods, momentum=cfg.test.momentum,
        baselines=family_job.DEFAULT_BASELINES,
        log=lambda s: print(f"   {s}", flush=True))
    found[f"transfer_{name}_vs_cosine"] = stage["vs_cosine"]
    note = family_job.transfer_note(section, stage, list(stage["vs_cosine"]))
    print(f"   {note}", flush=True)
    md += [f"## {stage['task'].name}", "", note, "", res.markdown_table(
        ["method", "tuned base lr", "test acc", "test loss", "val acc"],
        res.result_rows(stage["results"],
                        ("test_acc", "test_loss", "val_acc"))), ""]
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
  args.ka_pairs, args.ka_seeds = 16, 32
  args.ka_steps = 40 if args.small else 100
  t_start = time.perf_counter()
  summary: dict = {"variant": variant or "full",
                   "backend": jax.default_backend()}
  if args.signal_pairs:
    print(f"ES signal check, {args.signal_pairs} pairs per estimate",
          flush=True)
    summary["signal_check"] = signal_check(cfg, out, args.signal_pairs)
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
  summary["known_answer"] = known_answers(out, args)
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
    runs[f"mlr_snet seed {seed}"] = family_job.meta_train_saved(
        c, out / f"mlr_snet_s{seed}")
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.meta.es_pairs, c.meta.cosine_check = 4, True
  runs["mlr_snet 4 pairs"] = family_job.meta_train_saved(
      c, out / "mlr_snet_4pairs")
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.controller.name, c.controller.momentum = "hypergradient", 0.9
  c.meta.es_sigma, c.meta.lr = 0.2, 0.05
  runs["hypergradient"] = family_job.meta_train_saved(
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
      names["mlr"]: family_job.controller_method(mlr0["config"],
                                                 mlr0["theta"]),
      names["mlr0"]: family_job.controller_method(mlr0["config"],
                                                  mlr0["theta0"]),
      names["hd_meta"]: family_job.controller_method(hd_run["config"],
                                                     hd_run["theta"]),
      names["hd"]: family_job.tuned_method(
          lambda lr: hd_sgd(lr, 1e-3, momentum=0.9)),
      names["sa"]: family_job.tuned_method(
          lambda lr: self_adaptive_sgd(lr, momentum=0.9)),
  }
  results = family_job.judge(cfg, methods, quiet=True)
  summary["seconds"]["heldout"] = time.perf_counter() - t0
  summary.update(family_job.versus_cosine(results, names["mlr"]))
  summary["heldout"] = {}
  for n in results:
    for how in ("family", "instance"):
      d = family_differences(results, (n, "family"), ("cosine", how))
      summary["heldout"][f"{n} - cosine ({how})"] = {
          "acc": family_job.interval(d["pooled"]["acc"]),
          "loss": family_job.interval(d["pooled"]["loss"])}
  others = [(names[k], "family") for k in names] + [
      (n, how) for n in ("constant", "step", "warmup_cosine")
      for how in ("instance", "family")] + [("cosine", "instance")]
  table = res.write_family_table(out / "heldout.md", results,
                                 ("cosine", "family"), others)
  res.plot_family_rates(out / "rates.png", family_job.rate_curves(
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
