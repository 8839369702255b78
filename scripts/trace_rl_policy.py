"""What a trained RL policy sees and does, on its training task and after
transfer: one run each, the observation and action probabilities at every
decision.

Rebuilds the two tasks of a finished ``lrmeta rl-train`` run from its
``config.json`` and runs its frozen policy (``controller/``) once on each, at
the base rates the run tuned (``summary.json``). Prints, per task, a table of
every feature (first decision, last decision, mean) and the greedy factors,
and writes ``trace.md`` into the run folder. Use it when a transferred policy
behaves differently from how it behaved on its training task: features whose
range differs between the two tables are the ones it extrapolates on. (A
task-family run, ``configs/rl_family.py``, writes such ranges itself into
``features.md``.)

  python scripts/trace_rl_policy.py results/rl_fmnist_small
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import ml_collections

from lrmeta.controllers.rl_policy import feature_names, keep_index
from lrmeta.experiments import rl_loop
from lrmeta.experiments.transfer import transfer_task
from lrmeta.learned.rl_policy import policy_trace


def _table(name: str, steps: int, lr: float, tr: dict, names) -> list[str]:
  obs = tr["obs"]
  lines = [f"## {name}: {steps} steps, base lr {lr:g}, "
           f"{obs.shape[0]} decisions", "",
           "| feature | first | last | mean |", "|---|---|---|---|"]
  for i in range(obs.shape[1]):
    lines.append(f"| {names[i]} | {obs[0, i]:+.3f} | "
                 f"{obs[-1, i]:+.3f} | {obs[:, i].mean():+.3f} |")
  if "probs" in tr:
    greedy = tr["factors"][tr["probs"].argmax(-1)]
    keep = keep_index(tr["factors"])
    lines += ["", "greedy factor per decision: "
              + " ".join(f"{g:g}" for g in greedy),
              "p(keep) per decision: "
              + " ".join(f"{p:.2f}" for p in tr["probs"][:, keep])]
  else:
    lines += ["", "mean log-factor per decision: "
              + " ".join(f"{m:+.2f}" for m in tr["mean"])]
  lines += ["rate per window: " + " ".join(f"{r:.3g}" for r in tr["lr"]), ""]
  return lines


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("run_dir", help="a finished lrmeta rl-train results folder")
  p.add_argument("--seed", type=int, default=1000, help="the traced run's seed")
  args = p.parse_args(argv)
  run = pathlib.Path(args.run_dir)
  cfg = ml_collections.ConfigDict(
      json.loads((run / "config.json").read_text()))
  summary = json.loads((run / "summary.json").read_text())
  ckpt = str(run / "controller")
  key = jax.random.key(args.seed)
  task = rl_loop.build_task(cfg)
  steps, lr = summary["steps"], summary["tuned_lr"]["rl_policy"]
  names = feature_names(cfg.env.features)
  md = [f"# Policy trace: {run}", "",
        f"Seed {args.seed}; observations after each decision window "
        "(what the next decision reads).", ""]
  md += _table(task.name, steps, lr,
               policy_trace(ckpt, task, steps, key, learning_rate=lr), names)
  for name in cfg.transfer.get("tasks", ()):
    if f"transfer_{name}" not in summary:
      continue
    ttask, tsteps = transfer_task(cfg.transfer[name]), int(
        cfg.transfer[name].steps)
    tlr = summary[f"transfer_{name}"]["tuned_lr"]["rl_policy"]
    md += _table(ttask.name + " (transfer)", tsteps, tlr,
                 policy_trace(ckpt, ttask, tsteps, key, learning_rate=tlr),
                 names)
  text = "\n".join(md)
  (run / "trace.md").write_text(text)
  print(text)


if __name__ == "__main__":
  main()
