"""MLR-SNet meta-trained by the authors' protocol: its rate / gamma across
the one meta-training run, beside the authors' own log.

Runs only the meta-training stage of a config (default
``configs/mlrsnet_fmnist.py:small_official``, the online look-ahead at CPU
scale), then prints, per epoch of the run, the rate over gamma at the last
real step before each look-ahead. With ``--official-log`` (the authors'
``result/meta-train_resnet_cifar10_v1`` from github.com/xjtushujun/MLR-SNet,
read without torch) it prints their rate over gamma at the same fractions of
their 200-epoch run; their log holds the rates, not gamma, so gamma is
computed from ``--official-l0`` (default ln 10, an untrained 10-class
network's loss). The last line is JSON.

  python scripts/mlrsnet_official_trajectory.py \\
      --official-log result/meta-train_resnet_cifar10_v1
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import numpy as np

from lrmeta.controllers.mlr_snet import compute_gamma
from lrmeta.experiments.config import load_config
from lrmeta.experiments.meta_loop import meta_train_controller
from lrmeta.experiments.build import build_task
from lrmeta.learned import torch_pickle

FRACTIONS = (0.0, 1 / 3, 1 / 2, 2 / 3, 1.0)


def official_ratio(path: str, l0: float, num_classes: int = 10
                   ) -> dict[int, float]:
  """The authors' mean rate / gamma per epoch (1-based) of their log."""
  log = torch_pickle.load(path)
  lr = np.asarray(log["lr"], np.float64)
  epochs = len(log["train_loss"])
  per = lr.reshape(epochs, -1).mean(axis=1)
  gamma = float(compute_gamma(l0, num_classes))
  return {e + 1: float(per[e] / gamma) for e in range(epochs)}


def at_fractions(ratio: dict[int, float]) -> dict[str, float]:
  n = len(ratio)
  return {f"{f:.3f}": ratio[min(n, max(1, round(f * n)))] for f in FRACTIONS}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config",
                 default="configs/mlrsnet_fmnist.py:small_official")
  p.add_argument("--official-log", default=None)
  p.add_argument("--official-l0", type=float, default=math.log(10))
  p.add_argument("overrides", nargs="*",
                 help="config overrides key=value, e.g. meta.horizon=300")
  args = p.parse_args(argv)
  cfg = load_config(args.config)
  for item in args.overrides:
    key, value = item.split("=", 1)
    node = cfg
    *path, last = key.split(".")
    for k in path:
      node = node[k]
    node[last] = type(node[last])(value)
  task = build_task(cfg)
  out = pathlib.Path(cfg.output_dir)
  out.mkdir(parents=True, exist_ok=True)
  t0 = time.perf_counter()
  mt = meta_train_controller(cfg, task, out, quiet=True)
  seconds = time.perf_counter() - t0
  trace = mt["trace"]
  ratio = {i + 1: r["inner_lr_last"] / r["inner_gamma"]
           for i, r in enumerate(trace)}
  result = {"config": args.config, "meta_steps": len(trace),
            "seconds": round(seconds, 1), "gamma": trace[0]["inner_gamma"],
            "lrmeta": at_fractions(ratio)}
  print(f"{args.config}: {len(trace)} look-aheads in {seconds:.0f} s, "
        f"gamma {trace[0]['inner_gamma']:.4f}")
  rows = [("lrmeta (this run)", result["lrmeta"])]
  if args.official_log:
    result["official"] = at_fractions(official_ratio(args.official_log,
                                                     args.official_l0))
    rows.append(("authors' log (ResNet-18 / CIFAR-10)", result["official"]))
  print("| rate / gamma at fraction of the run | "
        + " | ".join(FRACTIONS_STR) + " |")
  print("|---" * (len(FRACTIONS) + 1) + "|")
  for name, vals in rows:
    print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals.values())
          + " |")
  print(json.dumps(result))
  return result


FRACTIONS_STR = ("first epoch", "1/3", "1/2", "2/3", "last epoch")

if __name__ == "__main__":
  main()
