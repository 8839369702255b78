"""The `lrmeta select` job: LRBench's select / compose / verify workflow."""

from __future__ import annotations

import json

from lrmeta.experiments import results as res
from lrmeta.experiments.train_job import build_task
from lrmeta.schedules import select


def run(cfg, *, quiet: bool = False, final_json: bool = True) -> dict:
  """Selects and composes LR policies for ``cfg.task``; writes the report.

  The results folder gets the resolved config, ``candidates.{md,csv}``,
  ``verify.{md,csv}``, ``policies.png`` and ``summary.json``. The last line
  printed is the summary as JSON (``target_accuracy``,
  ``steps_to_target_default``, ``steps_to_target_selected``,
  ``speedup_to_target``, ...).
  """
  keep = set(cfg.candidates)
  unknown = keep - {k for k, _ in select.default_candidates(10)}
  if unknown:
    raise ValueError(f"config key 'candidates' names unknown candidates "
                     f"{sorted(unknown)}")
  cands = select.default_candidates
  if keep:
    cands = lambda n: [c for c in select.default_candidates(n)
                       if c[0] in keep]
  sel = cfg.selection
  task = build_task(cfg)
  log = (lambda m: None) if quiet else (lambda m: print(m, flush=True))
  print(f"task {task.name} ({task.dataset.name}, {task.dataset.num_train} "
        f"training images), batch {task.batch_size}, budget {sel.budget} "
        f"steps, default {sel.default} with momentum {sel.momentum}",
        flush=True)
  out = res.run_dir(cfg.output_dir)
  res.write_config(out, cfg)
  result = select.select_and_compose(task, sel, candidates=cands, log=log)
  paths = select.write_report(result, str(out))
  for k in ("candidates_md", "verify_md"):
    with open(paths[k]) as f:
      print(f.read())
  print(f"results written to {out}/")
  summary = result.summary()
  if final_json:
    print(json.dumps(summary))
  return summary
