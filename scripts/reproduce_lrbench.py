"""LRBench on Fashion-MNIST / small CNN: select, compose, verify vs fixed LR.

Runs :func:`lrmeta.schedules.select.select_and_compose` and writes the
candidate and verification tables (Markdown + CSV), a PNG of the LR and
accuracy curves and ``summary.json`` to ``--out``. The last line printed is a
JSON object with ``target_accuracy``, ``steps_to_target_default``,
``steps_to_target_selected`` and ``speedup_to_target``.

  python scripts/reproduce_lrbench.py --small   # ~6-10 min on 2 CPU cores
  python scripts/reproduce_lrbench.py           # 1500 steps, batch 128
"""

from __future__ import annotations

import argparse
import json

import ml_collections

from lrmeta.schedules import select
from lrmeta.tasks import make_task

SMALL_KEYS = ("fix-0.01", "fix-0.1", "step", "exp", "poly", "cos", "upcos",
              "tri2", "dtri", "cosrsw", "sgdr", "onecycle")


def get_config(small: bool) -> ml_collections.ConfigDict:
  c = select.default_config()
  c.dataset, c.model = "fashion_mnist", "small_cnn"
  c.batch_size, c.max_train = 128, None
  c.budget, c.eval_every, c.eval_examples = 1500, 50, 5000
  c.stage_fractions = (1 / 3, 2 / 3)
  c.seeds, c.verify_seeds = (0, 1), (10, 11, 12)
  c.default = "fix(k0=0.01)"  # SGD 0.01, momentum 0.9
  c.target = 0.0  # the default's final test accuracy
  c.small = small
  if small:
    c.batch_size, c.max_train = 64, 20000
    c.budget, c.eval_every, c.eval_examples = 300, 25, 2000
  return c


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--small", action="store_true",
                 help="300 steps, batch 64, 20k train images, 12 candidates")
  p.add_argument("--target", type=float, default=0.0,
                 help="target test accuracy (<= 0: the default's final)")
  p.add_argument("--out", default="results/lrbench")
  args = p.parse_args()
  cfg = get_config(args.small)
  cfg.target = args.target
  task = make_task(cfg.dataset, cfg.model, batch_size=cfg.batch_size,
                   data_kwargs={"max_train": cfg.max_train})
  cands = select.default_candidates
  if args.small:
    cands = lambda n: [c for c in select.default_candidates(n)
                       if c[0] in SMALL_KEYS]
  print(f"task {task.name} ({task.dataset.name}, {task.dataset.num_train} "
        f"train images), batch {cfg.batch_size}, budget {cfg.budget} steps, "
        f"default {cfg.default} with momentum {cfg.momentum}", flush=True)
  res = select.select_and_compose(task, cfg, candidates=cands,
                                  log=lambda m: print(m, flush=True))
  paths = select.write_report(res, args.out)
  for k in ("candidates_md", "verify_md"):
    with open(paths[k]) as f:
      print(f.read())
  print("wrote " + ", ".join(paths.values()))
  print(json.dumps(res.summary()))


if __name__ == "__main__":
  main()
