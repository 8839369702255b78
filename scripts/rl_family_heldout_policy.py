"""A saved ``lrmeta rl-train`` family policy on the held-out shapes alone,
paired with the baselines of another run of the same held-out protocol.

The held-out baselines of ``configs/rl_family.py`` do not depend on the
policy's settings (``env.*``, ``ppo.*``): every run of one variant tunes and
tests them on the same shapes, grid, tuning seeds and test seeds. This
script judges only the policy saved in ``RUN/ppo/controller`` (its base rate
tuned per instance and once for the family, as the job does) and pairs its
per-(shape, seed) test accuracies with the baselines' that another run saved
in its ``heldout_results.json``: one interval per baseline and tuning
(:func:`lrmeta.protocol.paired_difference`, points, (shape, seed) pairs),
and the policy's late-cut ratio. It refuses baselines whose seeds do not
match. Writes ``RUN/heldout_policy.json`` (the policy's raw accuracies, the
late cut, the intervals); run again, it reuses the accuracies saved there.

  python scripts/rl_family_heldout_policy.py results/RUN \\
      results/OTHER_RUN/heldout_results.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from lrmeta import learned
from lrmeta.experiments import family_job
from lrmeta.experiments.config import load_config
from lrmeta.experiments.family_loop import build_family
from lrmeta.experiments.rl_family_loop import LABELS
from lrmeta.experiments.rl_report import late_cut_summary, log_paired
from lrmeta.protocol import (DEFAULT_BASELINES, compare_family,
                             paired_difference, verdict)
from lrmeta.tasks.family import instance_task


def paired_with_saved(mine: dict, saved: dict, how: str) -> dict:
  """The policy minus each saved baseline, tuned ``how``, pooled over the
  (shape, seed) pairs."""
  out = {}
  for b in DEFAULT_BASELINES:
    if b not in saved:
      continue
    theirs = saved[b][how]
    a, c = [], []
    for shape, r in mine[how].items():
      t = theirs[shape]
      order = [t["seeds"].index(s) for s in r["seeds"]]
      a += r["test_acc"]
      c += [t["test_acc"][i] for i in order]
    d = paired_difference(np.asarray(a), np.asarray(c))
    out[b] = {**{k: float(d[k]) for k in ("mean", "ci_low", "ci_high")},
              "n": int(d["n"]), "verdict": verdict(d)}
  return out


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("run", type=pathlib.Path)
  p.add_argument("baselines", type=pathlib.Path,
                 help="another run's heldout_results.json")
  p.add_argument("--config", default="configs/rl_family.py:small",
                 help="the config the runs share (family and test keys)")
  args = p.parse_args()
  cfg = load_config(args.config)
  label, out = LABELS["ppo"], args.run / "heldout_policy.json"
  t0 = time.perf_counter()
  if out.exists():  # judged already: pair again only
    done = json.loads(out.read_text())
    mine, cut = done["policy"], done["late_cut"]
  else:
    saved = learned.load(str(args.run / "ppo" / "controller"))
    shapes = family_job.heldout_shapes(build_family(cfg))
    results = compare_family(
        shapes, {label: family_job.tuned_controller_method(saved.config,
                                                           saved.theta)},
        family_job.protocol(cfg), task_fn=instance_task,
        log=lambda s: print(f"  [held-out] {s}", flush=True))
    mine = family_job.per_seed_accuracies(results)[label]
    cut = late_cut_summary(results[label])
    out.write_text(json.dumps({"policy": mine, "late_cut": cut}, indent=1,
                              default=float))
  base = json.loads(args.baselines.read_text())
  paired = {how: paired_with_saved(mine, base, how)
            for how in ("family", "instance")}
  log_paired(label, paired)
  print(f"{label}: last-10 % rate / rate at 70 %: mean "
        f"{cut['mean_ratio']:.3f}, below 1/3 on {cut['runs_below_third']} "
        f"of {cut['runs']} held-out runs")
  acc = np.concatenate([r["test_acc"] for r in mine["family"].values()])
  print(f"{label}: family-tuned base rate {mine['family_lr']}, mean test "
        f"accuracy {acc.mean():.2f} %; {time.perf_counter() - t0:.0f} s")
  out.write_text(json.dumps(
      {"policy": mine, "paired": paired, "late_cut": cut,
       "baselines_from": str(args.baselines)}, indent=1, default=float))


if __name__ == "__main__":
  main()
