"""Diagnostics of whole-run ES on the task family: known-answer checks and
the signal check at scale.

* Known-answer checks on real data (:func:`known_answers`): ES over one
  meta-parameter (the log of a constant SGD rate) on one instance against a
  dense grid of the same objective (:func:`known_answer_constant`), and ES
  over HD's two rates against a 2-D grid (:func:`known_answer_hd`).
* The ES signal check at scale (:func:`signal_check`): the cosine of two
  independent estimates at a controller's initial theta, each pooled over
  many calls, beside the noise-free expectation ``N / (N + d + 1)``
  (:func:`lrmeta.meta.family_es.es_cosine_curve`).

``scripts/reproduce_family_es.py`` runs them (``--known-answer-only``,
``--signal-pairs N``); each writes its JSON and figure into a folder.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta import learned
from lrmeta.experiments import family_loop
from lrmeta.learned import hypergradient as hd_kind
from lrmeta.meta import MetaTrainer, meta_train
from lrmeta.meta.family_es import (VALIDATION_SEED_BASE, FamilyES,
                                   es_cosine_curve)
from lrmeta.protocol import paired_difference
from lrmeta.tasks.family import Instance

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


def known_answer_constant(instance: Instance, *, pairs: int, seeds: int,
                          steps: int) -> dict:
  """ES over one meta-parameter (the log of a constant SGD rate) on one
  instance against a dense grid of the same objective (``seeds`` validation
  runs per point); ES runs ``steps`` outer steps of ``pairs`` pairs and its
  result is the mean of the last quarter of its path."""
  shape = instance.shape
  est = FamilyES(constant_sgd, (shape,), num_pairs=pairs, sigma=0.1,
                 shapes_per_step=1)
  val = est.validation_instances(seeds)
  rates = 0.01 * 2.0 ** (np.arange(0, 33) / 4)  # 0.01 .. 2.56, 2^(1/4) apart
  grid = est.grid_fitness([{"log_lr": np.float32(np.log(r))} for r in rates],
                          val).mean(1)
  best = float(rates[int(np.nanargmin(grid))])
  thetas = es_descent(est, {"log_lr": jnp.float32(np.log(0.01))},
                      steps, 0.1, 0)
  found = float(np.exp(tail_mean(thetas)["log_lr"]))
  ratio = found / best
  return {"instance": shape.name, "grid_best_lr": best,
          "es_lr": found, "ratio": ratio,
          "within_1_5x": bool(1 / 1.5 <= ratio <= 1.5),
          "grid_rates": rates.tolist(), "grid_objective": grid.tolist(),
          "es_trace": [float(np.exp(t["log_lr"])) for t in thetas]}


def known_answer_hd(instance: Instance, *, pairs: int, seeds: int,
                    steps: int) -> dict:
  """ES over HD's (log initial rate, log hypergradient rate) against a 2-D
  grid of the same objective.

  The objective is nearly flat around HD's defaults (1e-3, 1e-3) and has a
  narrow valley (initial rate and hypergradient rate trade off) walled by
  divergence. ES follows the Gaussian-smoothed objective, so it runs in two
  phases: a wide sigma (0.5 in log units) that crosses the flat region, then
  a narrow one (0.15) whose smoothing no longer pulls the optimum away from
  the wall. The grid's minimum over 198 cells is biased low by its own
  noise, so both points are also scored on fresh run seeds (``4 *
  seeds``). Each phase runs ``2 * steps`` outer steps of ``2 * pairs``
  pairs."""
  shape = instance.shape
  make = family_loop.optimizer_for_budget(hd_kind.config(momentum=0.9))
  est = FamilyES(make, (shape,), num_pairs=2 * pairs, sigma=0.5,
                 shapes_per_step=1)
  val = est.validation_instances(seeds)
  lrs = 1e-3 * 2.0 ** (np.arange(0, 18) / 2)    # 1e-3 .. 0.36, sqrt(2) apart
  betas = 1e-4 * 2.0 ** np.arange(0, 11)        # 1e-4 .. 0.1, 2x apart
  thetas = [hd_kind.theta_of(a, b) for a in lrs for b in betas]
  grid = est.grid_fitness(thetas, val).mean(1).reshape(len(lrs), len(betas))
  i, j = np.unravel_index(int(np.nanargmin(grid)), grid.shape)
  wide = es_descent(est, hd_kind.theta_of(1e-3, 1e-3), 2 * steps, 0.1, 1)
  narrow = es_descent(dataclasses.replace(est, sigma=0.15),
                      jax.tree.map(jnp.asarray, tail_mean(wide)),
                      2 * steps, 0.05, 2)
  lr_es, beta_es = hd_kind.rates(tail_mean(narrow))
  es_theta = hd_kind.theta_of(lr_es, beta_es)
  es_obj = float(np.mean(est.fitness(es_theta, val)))
  fresh = tuple(dataclasses.replace(shape, seed=FRESH_SEED_BASE + k)
                for k in range(4 * seeds))
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


def known_answers(out: pathlib.Path, *, pairs: int = 16, seeds: int = 32,
                  steps: int = 100) -> dict:
  """Both known-answer checks on one Fashion-MNIST instance (14x14, MLP 32,
  batch 64; 200 steps for the constant rate, 100 for HD); writes
  ``known_answer.png`` and ``known_answer.json`` and returns their
  summaries."""
  inst = Instance(dataset="fashion_mnist", pool=14, hidden=(32,),
                  batch_size=64, num_steps=200)
  kw = {"pairs": pairs, "seeds": seeds, "steps": steps}
  const = known_answer_constant(inst, **kw)
  print(f"   constant rate: grid best {const['grid_best_lr']:.4g}, ES "
        f"{const['es_lr']:.4g} (ratio {const['ratio']:.3f})", flush=True)
  hd = known_answer_hd(dataclasses.replace(inst, num_steps=100), **kw)
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


__all__ = ["FRESH_SEED_BASE", "constant_sgd", "es_descent",
           "known_answer_constant", "known_answer_hd", "known_answers",
           "plot_known_answers", "plot_signal_check", "signal_check",
           "tail_mean"]
