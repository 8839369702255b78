"""The paper-table scripts' shared entry point (``scripts/reproduce_xu2017.py``,
``scripts/reproduce_xu2019.py``): run ``lrmeta rl-train`` (or read a
finished run back) and write the paper-style ``table.md``."""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any, Callable

import ml_collections

from lrmeta.experiments.jobs import rl_train as rl_job
from lrmeta.experiments.config import apply_overrides, load_config


def table_script(description: str, config: str, variants: tuple[str, str],
                 table: Callable[[Any, dict], str], argv=None, *,
                 family: tuple[str, Callable[[Any, dict], str]] | None = None
                 ) -> None:
  """The ``main`` of the RL paper-table scripts: ``--small`` picks the
  second of ``variants`` (full, small) of ``config``; ``--config.*``
  overrides pass through; ``--table-only`` rebuilds ``table.md`` from the
  finished run's resolved config and summary instead of running the job.
  With ``family=(config, table)``, ``--family`` runs that config (same
  variant names) and table instead. Writes ``table.md`` in the results
  folder and prints it and the summary.
  """
  p = argparse.ArgumentParser(description=description)
  p.add_argument("--small", action="store_true",
                 help=f"CPU variant ({config}:{variants[1]})")
  if family is not None:
    p.add_argument("--family", action="store_true",
                   help=f"train over the task family ({family[0]})")
  p.add_argument("--table-only", action="store_true",
                 help="rebuild table.md from an existing results folder")
  p.add_argument("--quiet", action="store_true")
  args, overrides = p.parse_known_args(argv)
  if getattr(args, "family", False):
    config, table = family
  cfg = apply_overrides(
      load_config(f"{config}:{variants[int(args.small)]}"), overrides)
  out = pathlib.Path(cfg.output_dir)
  if args.table_only:
    # Describe the run as it was configured, not as the config reads now.
    cfg = ml_collections.ConfigDict(
        json.loads((out / "config.json").read_text()))
    summary = json.loads((out / "summary.json").read_text())
  else:
    summary = rl_job.run(cfg, quiet=args.quiet)
  md = table(cfg, summary)
  (out / "table.md").write_text(md)
  print(md)
  print(json.dumps(summary))


def transfer_table(cfg, summary: dict, policy_name: str = "RL policy"
                   ) -> list[str]:
  """Markdown lines for the transfer stages of a finished run, one per
  section of ``cfg.transfer.tasks`` the summary holds (none if the run had
  no transfer stage); shared by the paper-table scripts."""
  lines = []
  for name in cfg.transfer.get("tasks", ()):
    t, sec = summary.get(f"transfer_{name}"), cfg.transfer[name]
    if t is None:
      continue
    lines += [f"## Transfer, policy unchanged: {t['task']} ({t['data']}), "
              f"{t['steps']} steps of batch {sec.batch_size} on "
              f"{sec.max_train or 'all'} training images; every method's base"
              f" rate tuned on validation over {list(sec.lr_grid)}", "",
              "| method | tuned base lr | test acc |", "|---|---|---|"]
    for m, acc in t["test_acc"].items():
      label = policy_name if m == "rl_policy" else m
      lines.append(f"| {label} | {t['tuned_lr'][m]} | {acc} |")
    diff = [k for k in t if k.startswith("rl_minus_")][0]
    lines += ["", f"{policy_name} minus {diff[len('rl_minus_'):]}: "
              f"{100 * t[diff]:+.2f} points.", ""]
  return lines
