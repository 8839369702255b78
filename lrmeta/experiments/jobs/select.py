"""The `lrmeta select` job: LRBench's select / compose / verify workflow.

The config's ``selection`` block holds the fields of
:class:`lrmeta.schedules.select.SelectionConfig` (:func:`selection_config`
gives the defaults as a ConfigDict, so ``--config.selection.budget=...``
overrides work); ``candidates`` names the keys of
:func:`lrmeta.schedules.select.default_candidates` to try (``()``: all).
The verification's final test accuracy of the selected policy against the
default is judged by the protocol (:func:`verification_verdict`: the
diverged-run rule, the paired difference over the verify seeds, its
verdict).
"""

from __future__ import annotations

import dataclasses
import json

import ml_collections
import numpy as np

from lrmeta.experiments import results as res
from lrmeta.experiments import select_report
from lrmeta.experiments.build import build_task
from lrmeta.protocol import paired_difference, verdict
from lrmeta.protocol.scoring import diverged_to_worst
from lrmeta.schedules import select


def selection_config() -> ml_collections.ConfigDict:
  """The defaults of :class:`select.SelectionConfig` as a ConfigDict."""
  c = ml_collections.ConfigDict()
  for k, v in dataclasses.asdict(select.SelectionConfig()).items():
    setattr(c, k, v)  # field order, which config.json keeps
  return c


def to_selection_config(sel: ml_collections.ConfigDict
                        ) -> select.SelectionConfig:
  """The ``selection`` block of a config as a :class:`SelectionConfig`."""
  fields = {f.name for f in dataclasses.fields(select.SelectionConfig)}
  unknown = sorted(set(sel.keys()) - fields)
  if unknown:
    raise ValueError(f"config block 'selection' has unknown keys {unknown}; "
                     f"expected {sorted(fields)}")
  return select.SelectionConfig(**sel.to_dict())


def candidate_fn(keys) -> select.CandidateFn:
  """:func:`select.default_candidates` restricted to ``keys`` (all if empty).

  Raises:
    ValueError: a key names no default candidate.
  """
  keep = set(keys)
  unknown = keep - {k for k, _ in select.default_candidates(10)}
  if unknown:
    raise ValueError(f"config key 'candidates' names unknown candidates "
                     f"{sorted(unknown)}")
  if not keep:
    return select.default_candidates
  return lambda n: [c for c in select.default_candidates(n) if c[0] in keep]


def verification_verdict(result: select.SelectionResult) -> dict:
  """Final test accuracy of the selected policy minus the default's, in
  points, paired by verify seed (a diverged run counts 0), with its
  verdict."""
  def points(v: select.VerifyResult):
    finite = np.ones(len(v.test_acc), bool) if v.finite is None else v.finite
    return 100 * diverged_to_worst(v.test_acc[:, -1], finite)
  d = paired_difference(points(result.verified), points(result.default))
  return {**{k: float(d[k]) for k in ("mean", "ci_low", "ci_high")},
          "n": int(d["n"]), "verdict": verdict(d)}


def run(cfg, *, quiet: bool = False, final_json: bool = True) -> dict:
  """Selects and composes LR policies for ``cfg.task``; writes the report.

  The results folder gets the resolved config, ``candidates.{md,csv}``,
  ``verify.{md,csv}``, ``policies.png`` and ``summary.json``. The last line
  printed is the summary as JSON (``target_accuracy``,
  ``steps_to_target_default``, ``steps_to_target_selected``,
  ``speedup_to_target``, ...).

  Args:
    cfg: a config like ``configs/lrbench_fashion_mnist.py``'s.
    quiet: drop the progress messages.
    final_json: print the summary as the last line.

  Returns:
    The summary (:meth:`select.SelectionResult.summary`).
  """
  cands = candidate_fn(cfg.candidates)
  sel = to_selection_config(cfg.selection)
  task = build_task(cfg)
  log = (lambda m: None) if quiet else (lambda m: print(m, flush=True))
  print(f"task {task.name} ({task.dataset.name}, {task.dataset.num_train} "
        f"training images), batch {task.batch_size}, budget {sel.budget} "
        f"steps, default {sel.default} with momentum {sel.momentum}",
        flush=True)
  with res.results_folder(cfg.output_dir) as out:
    res.write_config(out, cfg)
    result = select.select_and_compose(task, sel, candidates=cands, log=log)
    paths = select_report.write_report(result, str(out))
    for k in ("candidates_md", "verify_md"):
      with open(paths[k]) as f:
        print(f.read())
  print(f"results written to {cfg.output_dir}/")
  summary = result.summary()
  summary["selected_vs_default"] = verification_verdict(result)
  if final_json:
    print(json.dumps(summary))
  return summary
