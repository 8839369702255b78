"""The ``lrmeta`` command line: ``lrmeta <command> --config FILE[:variant]``.

Overrides follow the config: ``--config.train.epochs=2``. ``--quiet`` hides
progress bars (CI).
"""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "train": ("lrmeta.experiments.train_job",
              "train a task under one or more LR controllers"),
    "select": ("lrmeta.experiments.select_job",
               "LRBench: select, compose and verify LR policies"),
    "meta-train": ("lrmeta.experiments.meta_job",
                   "meta-train a learned controller (MLR-SNet), then "
                   "meta-test and transfer it"),
    "rl-train": ("lrmeta.experiments.rl_job",
                 "train an RL learning-rate policy (PPO / actor-critic), "
                 "then test and transfer it"),
    "evaluate": ("lrmeta.experiments.evaluate_job",
                 "apply a saved controller, frozen, to a task against "
                 "tuned schedules"),
}


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  parser = argparse.ArgumentParser(
      prog="lrmeta", description="Learned learning-rate controllers.")
  sub = parser.add_subparsers(dest="command", required=True)
  for name, (_, help_text) in COMMANDS.items():
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--config", required=True,
                   help="path/to/config.py[:variant]")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
  args, rest = parser.parse_known_args(argv)
  unknown = [r for r in rest if not r.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  from lrmeta.experiments.config import apply_overrides, load_config  # pylint: disable=import-outside-toplevel
  import importlib  # pylint: disable=import-outside-toplevel
  cfg = apply_overrides(load_config(args.config), rest)
  module = importlib.import_module(COMMANDS[args.command][0])
  module.run(cfg, quiet=args.quiet)
  return 0


if __name__ == "__main__":
  sys.exit(main())
