"""Notebooks execute (jupytext percent-format .py files) on tiny settings."""

import pathlib
import runpy

import numpy as np
import pytest

NOTEBOOKS = sorted(pathlib.Path(__file__).parents[1].glob("notebooks/*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
  monkeypatch.setenv("LRMETA_NOTEBOOK_SMALL", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  ns = runpy.run_path(str(path), run_name="__main__")
  for name, hist in ns.get("histories", {}).items():
    # Real learning on real data: well above chance (0.1) after 40 steps.
    assert hist.final("test_acc") > 0.3, name
    assert np.isfinite(hist.steps["lr"]).all(), name
  for name, losses in ns.get("meta_losses", {}).items():
    # A validation cross-entropy after a few steps: finite, below chance
    # level's log(10) + margin, one entry per meta-step.
    assert losses.shape == (ns["META_STEPS"],), name
    assert np.isfinite(losses).all() and (losses < 3.0).all(), name
  if "figure_path" in ns:
    # The notebook saved its figure as a PNG (file signature checked).
    with open(ns["figure_path"], "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n", ns["figure_path"]
  if "grads" in ns:
    for name, g in ns["grads"].items():
      assert np.isfinite(g).all() and np.linalg.norm(g) > 0, name
  if "run" in ns:
    for method, c in ns["run"]["curves"].items():
      assert c["lr"].shape == c["train_loss"].shape, method
      assert c["test_acc"].shape == (len(c["seeds"]), len(c["eval_steps"]))
      assert ns["summary"][method] > 0.3, method
