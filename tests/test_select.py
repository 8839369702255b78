"""LRBench selection: vmapped mixed populations, pruning, composition, reports."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

import lrmeta.schedules as S
from lrmeta.schedules import select


def test_mixed_population_records_each_members_schedule(fmnist_task):
  specs = ["fix(k0=0.05)", "cos(k0=0.001, k1=0.1, l=6)",
           "tri2(k0=0.01, k1=0.1, l=2)[4] -> exp(k0=0.05, gamma=0.8)"]
  _, hist = select.run_policies(fmnist_task, specs, seeds=(0, 1),
                                num_steps=8, eval_every=8, eval_examples=100,
                                eval_splits=("val",))
  lr = hist.steps["lr"]
  assert lr.shape == (6, 8)
  for i, s in enumerate(specs):
    want = [float(S.schedule_from_spec(s)(t)) for t in range(8)]
    for j in range(2):
      np.testing.assert_allclose(lr[2 * i + j], want, rtol=1e-5)
  assert np.isfinite(hist.steps["train_loss"]).all()


@pytest.mark.slow  # ~4 compiles of a vmapped scan: ~1-4 min on 2 busy cores
def test_select_prunes_bad_and_composes(fmnist_task, tmp_path):
  cfg = select.default_config()
  cfg.budget, cfg.eval_every, cfg.eval_examples = 20, 10, 200
  cfg.stage_fractions = (0.5,)
  cfg.seeds, cfg.verify_seeds = (0,), (0,)
  cfg.keep_top, cfg.prune_margin = 2, 0.02
  seen = []

  def candidates(n):
    cands = [("zero", "fix(k0=0)"), ("good", "fix(k0=0.05)"),
             ("cos", f"cos(k0=0.001, k1=0.05, l={n})")]
    return cands

  res = select.select_and_compose(fmnist_task, cfg, candidates,
                                  log=seen.append)
  stage0 = [r for r in res.candidates if r.stage == 0]
  stage1 = [r for r in res.candidates if r.stage == 1]
  zero = next(r for r in stage0 if r.key == "zero")
  # A zero learning rate does not learn: pruned, and not tried again.
  assert zero.status == "pruned"
  assert "zero" not in {r.key for r in stage1}
  assert sum(r.status == "selected" for r in stage0) == 1
  spec = S.parse_spec(res.selected)
  assert isinstance(spec, S.CompositeSpec) and spec.lengths == (10,)
  # The verified run followed the composed policy.
  want = [float(S.schedule_from_spec(res.selected)(t)) for t in range(20)]
  np.testing.assert_allclose(res.verified.lr[0], want, rtol=1e-5)
  summary = res.summary()
  for k in ("target_accuracy", "steps_to_target_default",
            "steps_to_target_selected", "speedup_to_target"):
    assert k in summary
  json.dumps(summary)
  paths = select.write_report(res, str(tmp_path))
  for p in paths.values():
    assert os.path.getsize(p) > 0
  with open(paths["candidates_csv"]) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == len(res.candidates)
  assert {"policy", "val_acc", "spread", "steps_to_target", "wall_s"} <= set(
      rows[0])
