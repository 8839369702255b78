"""Notebooks execute (jupytext percent-format .py files) on tiny settings."""

import pathlib
import runpy

import numpy as np
import pytest

NOTEBOOKS = sorted(pathlib.Path(__file__).parents[1].glob("notebooks/*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
  monkeypatch.setenv("LRMETA_NOTEBOOK_SMALL", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  ns = runpy.run_path(str(path), run_name="__main__")
  for name, hist in ns.get("histories", {}).items():
    # Real learning on real data: well above chance (0.1) after 40 steps.
    assert hist.final("test_acc") > 0.3, name
    assert np.isfinite(hist.steps["lr"]).all(), name
