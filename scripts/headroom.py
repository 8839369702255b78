"""Headroom on the task family: the per-instance oracle among hand schedules
minus the best single hand schedule tuned for the whole family
(:mod:`lrmeta.protocol.headroom`), pooled and per shape, 95 % paired
intervals over (shape, seed) pairs.

  python scripts/headroom.py --config configs/headroom.py
  python scripts/headroom.py --config configs/headroom.py:long

Writes ``headroom.md``, ``summary.json`` and ``results.pkl`` (every
schedule's :class:`~lrmeta.protocol.FamilyResult`, which
``scripts/pretrained_card.py --baselines`` pairs a controller against) into
the config's ``output_dir``; the last line printed is the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import pickle
import sys
import time

import jax

from lrmeta.experiments.config import apply_overrides, load_config
from lrmeta.experiments.validate import validate
from lrmeta.experiments.family_job import protocol
from lrmeta.experiments.family_loop import build_family, parse_source
from lrmeta.protocol import compare_family
from lrmeta.protocol.headroom import headroom, hand_methods, widen_shapes

ROOT = pathlib.Path(__file__).resolve().parents[1]


def family_config(cfg):
  """The family's config (``cfg.family``, a path relative to the
  repository and its variant), unlocked, its ``test`` section from
  ``cfg.test``."""
  fcfg = load_config(str(ROOT / cfg.family))
  fcfg.unlock()
  fcfg.test.update(cfg.test.to_dict())
  return fcfg


def shapes_of(cfg) -> list:
  """The family's held-out shapes (of ``cfg.sources``), once per axis of
  ``cfg.widen.axes``."""
  family = build_family(family_config(cfg))
  keep = {parse_source(s) for s in cfg.sources}
  base = [s for s in family.held_out_shapes
          if not keep or (s.dataset, s.pool) in keep]
  w = cfg.widen
  axis = {"none": {}, "long": {"steps_scale": w.steps_scale},
          "noise": {"label_noise": w.label_noise},
          "small_data": {"max_train": w.max_train}}
  out = []
  for a in w.axes:
    if a not in axis:
      raise ValueError(f"widen.axes: unknown axis {a!r}; choose from "
                       f"{tuple(axis)}")
    out += widen_shapes(base, **axis[a])
  return out


def table(summary: dict) -> str:
  """Markdown: the pooled headroom, then one row per shape."""
  def fmt(d):
    return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"
  lines = [f"family choice: `{summary['family_choice']}`", "",
           "| shape | oracle's schedule | oracle - family choice (points) |",
           "|---|---|---|"]
  for s, d in summary["per_instance"].items():
    lines.append(f"| {s.rsplit('/', 2)[0]} | `{summary['instance_choice'][s]}`"
                 f" | {fmt(d)} |")
  lines.append(f"| **pooled** ({summary['pooled']['n']} pairs) | | "
               f"**{fmt(summary['pooled'])}** |")
  up = summary["test_chosen"]
  lines += ["", f"Oracle chosen on the test runs (an upper bound): "
            f"{fmt(up['pooled'])} pooled; per shape "
            + ", ".join(f"`{up['instance_choice'][s]}` {fmt(d)}"
                        for s, d in up["per_instance"].items()) + "."]
  return "\n".join(lines)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default=str(ROOT / "configs" / "headroom.py"))
  p.add_argument("--reuse", action="store_true", help="tabulate the runs "
                 "of output_dir/results.pkl again instead of training")
  args, overrides = p.parse_known_args(argv)
  cfg = load_config(args.config)
  cfg = apply_overrides(cfg, overrides)
  validate(cfg)
  fcfg = family_config(cfg)
  shapes = shapes_of(cfg)
  out = pathlib.Path(cfg.output_dir)
  out.mkdir(parents=True, exist_ok=True)
  t0 = time.perf_counter()
  methods = hand_methods(cfg.schedules, optimizer=cfg.optimizer,
                         momentum=cfg.momentum)
  print(f"{len(shapes)} shapes x {len(methods)} schedules x "
        f"{cfg.test.num_seeds} test seeds ({cfg.optimizer})", flush=True)
  prot = protocol(fcfg)
  if args.reuse:  # the same config's runs, read back
    with open(out / "results.pkl", "rb") as f:
      results = pickle.load(f)["results"]
  else:
    results = compare_family(shapes, methods, prot, quiet=True,
                             log=lambda s: print(s, flush=True))
  h = headroom(results, list(cfg.schedules))
  h["test_chosen"] = headroom(results, list(cfg.schedules), on="test")
  summary = {"config": args.config, "optimizer": cfg.optimizer,
             "backend": jax.default_backend(), **h,
             "family_lr": {n: r.family_lr for n, r in results.items()},
             "tune_seeds": list(prot.tune_seeds),
             "test_seeds": list(prot.test_seeds),
             "seconds": time.perf_counter() - t0}
  md = table(summary)
  (out / "headroom.md").write_text(md + "\n")
  with open(out / "results.pkl", "wb") as f:
    pickle.dump({"shapes": shapes, "protocol": prot, "results": results}, f)
  (out / "summary.json").write_text(json.dumps(summary, indent=1,
                                               default=float))
  print(md, flush=True)
  print(json.dumps(summary, default=float))


if __name__ == "__main__":
  sys.exit(main())
