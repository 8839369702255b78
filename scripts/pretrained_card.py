"""Ships a meta-trained controller into ``lrmeta/pretrained/store/NAME``:
its weights, its card (what it was trained on, by which command and
commit, its held-out table) and the card's reference rate trajectory.

  python scripts/pretrained_card.py --name learned_schedule_sgd \\
      --run results/pretrained/learned_schedule_sgd \\
      --baselines results/headroom_family/results.pkl \\
      --command "lrmeta meta-train --config configs/learned_lr.py:small ..."

``--run`` is a ``lrmeta meta-train`` results folder (its
``checkpoints/controller`` and ``meta_metrics.jsonl``). The held-out table
judges the controller on the family's held-out shapes against the default
hand schedules on ``--optimizer`` (the best chosen on validation,
:func:`lrmeta.protocol.headroom.versus_hand`); ``--baselines`` reuses the
hand schedules' runs of ``scripts/headroom.py`` on the same family (its
shapes, seeds and grid) instead of running them again. ``--versus NAME``
adds a shipped controller, run on the same shapes and seeds, and the rows
of the controller paired against it; ``--judge-only`` prints the table
(and the per-shape tuned rates) without writing into the store.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import pickle
import subprocess
import sys

from lrmeta import learned, pretrained
from lrmeta.experiments.config import load_config
from lrmeta.experiments.family_job import protocol, tuned_controller_method
from lrmeta.experiments.family_loop import build_family, objective_first_last
from lrmeta.experiments.meta_run import read_trace
from lrmeta.pretrained import cards
from lrmeta.protocol import DEFAULT_BASELINES, compare_family, differences
from lrmeta.protocol.headroom import HAND_SCHEDULES, hand_methods, versus_hand
from lrmeta.protocol.stats import interval, versus_best

ROOT = pathlib.Path(__file__).resolve().parents[1]


def heldout_run(saved, args) -> dict:
  """The held-out protocol of the controller against the default hand
  schedules on ``args.optimizer`` (run here, or read from ``--baselines``,
  a ``scripts/headroom.py`` results.pkl of the same family: its shapes,
  seeds and grid are then used); rows of the card's table."""
  name = args.name
  if args.baselines:
    with open(args.baselines, "rb") as f:
      stored = pickle.load(f)
    shapes, prot, results = (stored["shapes"], stored["protocol"],
                             dict(stored["results"]))
    methods = {}
  else:
    fcfg = load_config(str(ROOT / args.family))
    fcfg.unlock()
    fcfg.test.grid_low = args.grid_low
    shapes, prot, results = (build_family(fcfg).held_out_shapes,
                             protocol(fcfg), {})
    methods = hand_methods(DEFAULT_BASELINES, optimizer=args.optimizer)
  methods[name] = tuned_controller_method(saved.config, saved.theta)
  if args.versus:
    other = pretrained.load(args.versus)
    methods[args.versus] = tuned_controller_method(other.config, other.theta)
  results.update(compare_family(shapes, methods, prot, quiet=True,
                                log=lambda s: print(s, flush=True)))
  hands = [n for n in HAND_SCHEDULES if n in results]
  rows = {}
  sets = [list(DEFAULT_BASELINES)] + (
      [hands] if len(hands) > len(DEFAULT_BASELINES) else [])
  for names in sets:
    v = versus_hand(results, name, names)
    which = (f"the {len(names)} hand schedules" if names is hands
             else "the default baselines")
    rows.update({
        f"{name} (family base) - best of {which} tuned for the family, "
        f"chosen on validation ({v['heldout_best_hand_family']})":
            v["heldout_vs_best_hand_family"],
        f"{name} (per-instance base) - per-instance oracle among {which}":
            v["heldout_vs_best_hand_instance"],
        f"per-instance oracle among {which} - the best of them tuned for "
        f"the family (headroom)": v["heldout_headroom"]})
  for how in ("family", "instance"):
    b = versus_best(results, name, DEFAULT_BASELINES, how)
    rows[f"{name} ({how} base) - best default baseline tuned per {how}, "
         f"chosen on the test runs ({b['baseline']})"] = interval(b)
  rows[f"{name} (family base) - cosine (family)"] = interval(differences(
      results, (name, "family"), ("cosine", "family"))["pooled"]["acc"])
  for how in ("family", "instance") if args.versus else ():
    rows[f"{name} ({how} base) - {args.versus} ({how} base)"] = interval(
        differences(results, (name, how), (args.versus, how))["pooled"]
        ["acc"])
  return {"note": (
      f"{len(shapes)} held-out shapes of {args.family} x "
      f"{len(prot.test_seeds)} paired test seeds (seeds "
      f"{prot.test_seeds[0]}..{prot.test_seeds[-1]}); every rate (the hand "
      f"schedules' peak, the controller's base) tuned on tune seeds "
      f"{prot.tune_seeds} over {prot.lr_grid[0]:g} * sqrt(2)**k (widened "
      f"at an edge), per instance and once for the family; hand schedules "
      f"on {args.optimizer}: {', '.join(hands)}."),
      "rows": rows,
      "family_lr": {n: r.family_lr for n, r in results.items()},
      "instance_lr": {n: {getattr(k, "name", str(k)): v.lr
                          for k, v in r.per_instance.items()}
                      for n, r in results.items()}}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--name", required=True)
  p.add_argument("--run", required=True, help="lrmeta meta-train folder")
  p.add_argument("--command", required=True, help="the meta-train command")
  p.add_argument("--description", default="")
  p.add_argument("--baselines", default="", help="a scripts/headroom.py "
                 "results.pkl with the hand schedules' runs")
  p.add_argument("--family", default="configs/learned_lr.py:small")
  p.add_argument("--optimizer", default="sgd")
  p.add_argument("--grid-low", type=float, default=0.0125)
  p.add_argument("--ran-on", default="CPU, 2 cores (shared)")
  p.add_argument("--commit", default="", help="the code commit the command "
                 "ran (default: HEAD)")
  p.add_argument("--versus", default="", help="a shipped controller to run "
                 "beside it and pair it against")
  p.add_argument("--judge-only", action="store_true", help="print the "
                 "held-out table; write nothing into the store")
  args = p.parse_args(argv)
  run = pathlib.Path(args.run)
  saved = learned.load(str(run / "checkpoints" / "controller"))
  first, last = objective_first_last(read_trace(run / "meta_metrics.jsonl"))
  family = load_config(str(ROOT / args.family)).family
  commit = args.commit or subprocess.run(
      ["git", "rev-parse", "HEAD"], cwd=ROOT, text=True, capture_output=True,
      check=True).stdout.strip()
  heldout = heldout_run(saved, args)
  if args.judge_only:
    print(json.dumps(heldout, indent=1, default=float))
    return
  info = {"description": args.description,
          "trained_on": (f"the task family of {args.family} (pooled "
                         f"Fashion-MNIST 7x7 and 14x14, grayscale CIFAR-10 "
                         f"JPEG copy 8x8; MLPs; 100-400 steps), "
                         f"{family.train_shapes} training shapes"),
          "command": args.command, "commit": commit, "ran_on": args.ran_on,
          "meta_objective": f"{first:.4f} -> {last:.4f}",
          "heldout": heldout}
  card = cards.write(ROOT / "lrmeta" / "pretrained" / "store" / args.name,
                     args.name, saved, info)
  print(cards.card_markdown(card))


if __name__ == "__main__":
  sys.exit(main())
