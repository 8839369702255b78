"""Report of an LRBench selection: candidate and verification tables, figure.

:func:`write_report` turns a :class:`lrmeta.schedules.select.SelectionResult`
into ``candidates.{md,csv}``, ``verify.{md,csv}``, ``policies.png`` (LR and
test-accuracy curves of the default and the selected policy) and
``summary.json``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from lrmeta.experiments.results import markdown_table
from lrmeta.schedules.select import SelectionResult

CANDIDATE_COLUMNS = ("stage", "policy", "status", "val_acc", "spread",
                     "steps_to_target", "time_to_target_s", "wall_s")
VERIFY_COLUMNS = ("policy", "final_test_acc", "spread", "steps_to_target",
                  "steps_to_target_per_seed", "wall_s")


def _fmt(x, nd=4):
  """A table cell: floats to ``nd`` decimals, +inf as ``never``."""
  if isinstance(x, float):
    if not math.isfinite(x):
      return "never" if x > 0 else "nan"
    return f"{x:.{nd}f}"
  return str(x)


def candidate_rows(result: SelectionResult) -> list[list[Any]]:
  """One row per candidate and stage, in :data:`CANDIDATE_COLUMNS` order."""
  return [[r.stage, r.spec, r.status, _fmt(r.utility), _fmt(r.spread),
           _fmt(r.steps_to_target, 0), _fmt(r.time_to_target_s, 1),
           _fmt(r.wall_s, 1)] for r in result.candidates]


def verify_rows(result: SelectionResult) -> list[list[Any]]:
  """The default and the selected policy, in :data:`VERIFY_COLUMNS` order."""
  return [[v.spec, _fmt(v.final_acc), _fmt(v.final_spread),
           _fmt(v.steps_to_target, 0),
           " ".join(_fmt(x, 0) for x in v.steps_to_target_per_seed),
           _fmt(v.wall_s, 1)] for v in (result.default, result.verified)]


def write_report(result: SelectionResult, out_dir: str) -> dict[str, str]:
  """Writes the tables, the figure and ``summary.json`` to ``out_dir``.

  Args:
    result: what :func:`lrmeta.schedules.select.select_and_compose` returned.
    out_dir: the results folder (created if missing).

  Returns:
    The paths written, keyed ``candidates_csv``, ``candidates_md``,
    ``verify_csv``, ``verify_md``, ``png`` and ``json``.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = {k: os.path.join(out_dir, f) for k, f in [
      ("candidates_csv", "candidates.csv"), ("candidates_md", "candidates.md"),
      ("verify_csv", "verify.csv"), ("verify_md", "verify.md"),
      ("png", "policies.png"), ("json", "summary.json")]}
  _write_tables(paths["candidates_csv"], paths["candidates_md"],
                CANDIDATE_COLUMNS, candidate_rows(result),
                f"Candidates on {result.task} (target val accuracy "
                f"{result.target:.3f}; utility = val accuracy at the end of "
                f"the stage, spread = std over seeds, wall = population wall "
                f"time / members)")
  _write_tables(paths["verify_csv"], paths["verify_md"], VERIFY_COLUMNS,
                verify_rows(result),
                f"Verification on {result.task}: full budget "
                f"{result.budget} steps, target test accuracy "
                f"{result.target:.3f} (steps on the seed-mean curve)")
  plot(result, paths["png"])
  with open(paths["json"], "w") as f:
    json.dump(result.summary(), f, indent=1)
  return paths


def _write_tables(csv_path: str, md_path: str, head: Sequence[str],
                  body: Sequence[Sequence[Any]], caption: str) -> None:
  with open(csv_path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(head)
    w.writerows(body)
  with open(md_path, "w") as f:
    f.write(caption + "\n\n" + markdown_table(head, body))


def plot(result: SelectionResult, path: str) -> None:
  """LR of the first seed and mean +- std test accuracy, default vs selected.

  Stage boundaries are dotted lines on the LR panel, the target a dashed line
  on the accuracy panel.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
  for v, name in ((result.default, "default"), (result.verified, "selected")):
    ax0.plot(np.arange(v.lr.shape[1]), v.lr[0], label=f"{name}: {v.spec}")
    m, sd = v.test_acc.mean(0), v.test_acc.std(0)
    ax1.plot(v.eval_steps, m, label=name)
    ax1.fill_between(v.eval_steps, m - sd, m + sd, alpha=0.2)
  for b in result.stage_bounds[1:-1]:
    ax0.axvline(b, color="gray", ls=":")
  ax1.axhline(result.target, color="k", ls="--", lw=0.8, label="target")
  ax0.set(xlabel="step", ylabel="learning rate", title="LR policies")
  ax1.set(xlabel="step", ylabel="test accuracy",
          title=f"{result.task} (mean +- std over seeds)")
  lo = min(result.target - 0.1, float(result.verified.test_acc.mean(0)[0]))
  ax1.set_ylim(max(lo, 0.0), None)
  ax0.legend(fontsize=6)
  ax1.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
