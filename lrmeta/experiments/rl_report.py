"""What ``lrmeta rl-train`` reports of RL policies on the task family: the
observation ranges a policy read (training shapes, held-out shapes,
transfers), the late-cut ratio of its held-out runs, and each trainer's
summary line."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from lrmeta.controllers.rl_policy import feature_names
from lrmeta.experiments import family_job
from lrmeta.experiments import results as res
from lrmeta.experiments.rl_family_loop import LABELS, env_config
from lrmeta.learned import rl_policy as rl
from lrmeta.rl.family import (family_envs, greedy_observations, late_cut,
                              observation_quantiles)
from lrmeta.tasks.family import Family


def training_observations(cfg, tr: dict, shapes, family: Family,
                          seeds: int = 4) -> np.ndarray:
  """Observations of the frozen (greedy) policy on training shapes,
  ``[n, features]``."""
  action = tr["config"]["policy"]["action"]
  envs = family_envs(shapes, env_config(cfg, action), cfg.env.decisions,
                     family=family, allow_held_out=True)
  return greedy_observations(envs, tr["actor"], seeds)


def traced_observations(tr: dict, folder: pathlib.Path, task, steps: int,
                        lr: float, seeds=(0,)) -> np.ndarray:
  """Observations of the saved policy on ``task`` (rate ``lr``)."""
  rows = [rl.policy_trace(str(folder), task, steps, jax.random.key(s),
                          learning_rate=lr)["obs"] for s in seeds]
  return np.concatenate(rows)


def feature_table(names, columns: dict[str, np.ndarray]) -> str:
  """Markdown: per feature, ``p5 / median / p95`` in each column."""
  qs = {k: observation_quantiles(v) for k, v in columns.items()}
  rows = [[name] + [" / ".join(f"{x:+.2f}" for x in q[j])
                    for q in qs.values()]
          for j, name in enumerate(names)]
  return res.markdown_table(["feature"] + [f"{k} (p5 / median / p95)"
                                           for k in qs], rows)


def late_cut_summary(result) -> dict:
  """The late-cut ratio (:func:`lrmeta.rl.family.late_cut`) of a method's
  per-family held-out runs: mean, per shape, and how many runs are below
  1/3."""
  per = {s.name: late_cut(r.hist.steps["lr"])
         for s, r in result.per_family.items()}
  every = np.concatenate(list(per.values()))
  return {"mean_ratio": float(np.nanmean(every)),
          "runs_below_third": int(np.sum(every < 1 / 3)),
          "runs": int(every.size),
          "per_shape": {k: float(np.nanmean(v)) for k, v in per.items()}}


def log_paired(name: str, paired: dict, log=print) -> None:
  """One line per tuning and baseline of :func:`paired_versus_baselines`'s
  result."""
  for how, rows in paired.items():
    for b, d in rows.items():
      log(f"  {name} minus {how}-tuned {b}: {d['mean']:+.2f} "
          f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] points ({d['n']} "
          f"pairs, {d['verdict']})")


def paired_versus_baselines(results, name: str, out: pathlib.Path,
                            log=print) -> dict:
  """``name`` minus every tuned baseline on the held-out shapes, each side
  tuned once for the family and per instance (:func:`family_job.versus_each`,
  the same (shape, seed) pairs); logs one line per baseline and writes the
  raw per-(shape, seed) test accuracies of every method to
  ``heldout_results.json``. Returns ``{"family" | "instance": {baseline:
  interval}}``."""
  paired = {how: family_job.versus_each(results, name,
                                        family_job.DEFAULT_BASELINES, how)
            for how in ("family", "instance")}
  log_paired(name, paired, log)
  (out / "heldout_results.json").write_text(json.dumps(
      family_job.per_seed_accuracies(results), indent=1, default=float))
  return paired


def observations_section(cfg, head, family, shapes, transfers, out, algo):
  """Stage 4: the headline policy's observation ranges (``features.md``);
  returns the section."""
  print("[4/4] observation ranges of the headline policy", flush=True)
  cols = {"training shapes": training_observations(cfg, head, shapes,
                                                   family)}
  if cfg.test.enabled:
    held = family_job.heldout_shapes(family)
    cols["held-out shapes"] = training_observations(cfg, head, held, family)
  for name, tf in transfers.items():
    cols[f"transfer {name}"] = traced_observations(
        head, out / algo / "controller", tf["task"],
        cfg.transfer[name].steps, tf["results"][LABELS[algo]].lr)
  names = feature_names(head["config"]["policy"]["features"])
  ftable = feature_table(names, cols)
  (out / "features.md").write_text(
      f"Observations of {LABELS[algo]} (greedy), p5 / median / p95 per "
      f"feature over every decision; training and held-out shapes: 4 "
      f"episodes per shape in the training environment (base rate "
      f"{cfg.env.base_lr}, random start as in training), the observations "
      f"the decisions read; transfer: one run at the policy's tuned base "
      f"rate, the observations after each decision window (what decisions "
      f"2 to N read, and the final state).\n\n"
      + ftable)
  return ("Observation ranges", "Headline policy, greedy.", ftable)


def trainer_summary(algo: str, tr: dict) -> dict:
  h = tr["history"]
  out = {"episodes": tr["episodes"], "seconds": round(tr["seconds"], 1)}
  if algo == "es":
    vals = [r["val_objective"] for r in h if "val_objective" in r]
    out.update(meta_objective_first=vals[0], meta_objective_last=vals[-1],
               es_cosine=tr["config"].get("es_cosine"))
  else:
    # Iterations cycle through the training shapes, whose returns differ
    # in scale: compare each shape's first and last iteration.
    by_shape: dict[int, list[float]] = {}
    for m in h:
      by_shape.setdefault(int(m.get("env_index", 0)), []).append(
          float(m["episode_return"]))
    first = [r[0] for r in by_shape.values()]
    last = [r[-1] for r in by_shape.values()]
    out.update(return_first=float(np.mean(first)),
               return_last=float(np.mean(last)),
               shapes_return_rose=int(sum(b > a for a, b in zip(first, last))),
               shapes=len(by_shape))
  return out


def train_note(cfg, trained, shapes) -> str:
  parts = []
  for a, tr in trained.items():
    s = trainer_summary(a, tr)
    if a == "es":
      parts.append(
          f"{LABELS[a]}: {s['episodes']} runs ({cfg.meta.es_pairs} pairs per "
          f"meta-step, sigma {cfg.meta.es_sigma}); validation objective "
          f"{s['meta_objective_first']:.4f} -> "
          f"{s['meta_objective_last']:.4f}; {s['seconds']:.0f} s")
    else:
      parts.append(
          f"{LABELS[a]}: {s['episodes']} episodes; mean return over the "
          f"training shapes {s['return_first']:+.3f} at each shape's first "
          f"iteration, {s['return_last']:+.3f} at its last (higher on "
          f"{s['shapes_return_rose']} of {s['shapes']} shapes); "
          f"{s['seconds']:.0f} s")
  return (f"Actor {tuple(cfg.env.hidden)} on {cfg.env.features} features, "
          f"{cfg.env.decisions} decisions per episode, SGD momentum "
          f"{cfg.env.momentum} from base rate {cfg.env.base_lr} (episodes "
          f"start at base_lr * e^U[-{cfg.env.init_log_lr_range}, "
          f"{cfg.env.init_log_lr_range}]); {len(shapes)} training shapes. "
          + "; ".join(parts) + ".")


__all__ = ["feature_table", "late_cut_summary", "observations_section",
           "log_paired", "paired_versus_baselines",
           "traced_observations", "train_note", "trainer_summary",
           "training_observations"]
