"""Imports the MLR-SNet authors' published meta-trained nets into lrmeta.

The authors (Shu et al., TPAMI 2022) publish three snapshots of one
meta-training run on ResNet-18 / CIFAR-10 in their repository
github.com/xjtushujun/MLR-SNet, folder ``meta-test/``: ``mlr_snet 1.pth``,
``mlr_snet 100.pth`` and ``mlr_snet 200.pth``. They carry no licence, so
lrmeta does not ship them: download them yourself, then

  python scripts/import_mlrsnet.py "mlr_snet 1.pth" "mlr_snet 100.pth" \\
      "mlr_snet 200.pth" --out results/mlrsnet_published

writes a saved controller (``lrmeta.learned.load``, ``ckpt:FOLDER`` in
``lrmeta train``, ``--config.controller=FOLDER`` in ``lrmeta evaluate``) that
runs them with the authors' meta-test protocol
(:func:`lrmeta.learned.mlr_snet.from_torch`). The files are read without
torch. The last line printed is JSON with each input's SHA-256 and the
parameter count of one snapshot.
"""

from __future__ import annotations

import argparse
import json

from lrmeta import learned
from lrmeta.controllers.mlr_snet import GAMMA_FROM, SEMANTICS, num_params
from lrmeta.learned.mlr_snet import from_torch, snapshots


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("paths", nargs="+", help="the .pth files in order of use "
                 "(epochs 1, 100, 200), or one file")
  p.add_argument("--out", required=True, help="folder to write")
  p.add_argument("--semantics", default="meta_test", choices=SEMANTICS)
  p.add_argument("--gamma-from", default="minibatch", choices=GAMMA_FROM)
  p.add_argument("--gamma-examples", type=int, default=None,
                 help="training examples for --gamma-from=split (all)")
  p.add_argument("--steps-per-epoch", type=int, default=None,
                 help="count the budget in epochs of this many steps for "
                 "the switches (default: in steps)")
  p.add_argument("--num-classes", type=int, default=10)
  args = p.parse_args(argv)
  theta, config = from_torch(
      args.paths, semantics=args.semantics, num_classes=args.num_classes,
      gamma_from=args.gamma_from, gamma_examples=args.gamma_examples,
      steps_per_epoch=args.steps_per_epoch)
  learned.save(args.out, theta, config)
  first = snapshots(theta)[0] if "s0" in theta else theta
  summary = {"out": args.out, "inputs": config["imported_from"],
             "snapshots": len(args.paths), "num_params": num_params(first),
             "semantics": args.semantics}
  print(f"imported {len(args.paths)} snapshot(s) of "
        f"{summary['num_params']} parameters into {args.out}")
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
