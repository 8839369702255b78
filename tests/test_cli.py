"""The CLI and configs: the small main job end to end on real data."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lrmeta.cli import main
from lrmeta.experiments.config import apply_overrides, load_config
from lrmeta.experiments.results import load_run

CFG = "configs/fashion_mnist.py"


def test_overrides_are_typed_and_unknown_keys_named():
  cfg = load_config(CFG + ":small")
  apply_overrides(cfg, ["--config.train.epochs=0.5", "--config.seeds=(3,4)",
                        "--config.optimizer.name=adam"])
  assert cfg.train.epochs == 0.5 and tuple(cfg.seeds) == (3, 4)
  assert cfg.optimizer.name == "adam"
  with pytest.raises(KeyError, match="train.epoch"):
    apply_overrides(cfg, ["--config.train.epoch=2"])
  with pytest.raises(ValueError, match="train.eval_every"):
    apply_overrides(cfg, ["--config.train.eval_every=ten"])
  with pytest.raises(ValueError, match="unknown variant"):
    load_config(CFG + ":huge")


def test_out_of_range_value_names_the_key(tmp_path):
  with pytest.raises(ValueError, match="task.label_noise"):
    main(["train", "--config", CFG + ":small", "--quiet",
          "--config.task.label_noise=1.5",
          f"--config.output_dir={tmp_path}"])


@pytest.mark.slow
def test_small_main_job_writes_a_complete_results_folder(tmp_path, capsys):
  out = tmp_path / "run"
  main(["train", "--config", CFG + ":small", "--quiet",
        f"--config.output_dir={out}", "--config.methods=('cosine',)",
        "--config.train.epochs=0.5"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  for f in ("config.json", "metrics.jsonl", "history.csv", "summary.md",
            "curves.png"):
    assert (out / f).stat().st_size > 0, f
  acc = float(summary["test_acc"]["cosine"])
  assert 0.3 < acc <= 1.0  # 31 steps on real data: well above chance (0.1)
  rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  assert {r["method"] for r in rows} == {"cosine"}
  # Same config and seed -> the same numbers.
  out2 = tmp_path / "run2"
  main(["train", "--config", CFG + ":small", "--quiet",
        f"--config.output_dir={out2}", "--config.methods=('cosine',)",
        "--config.train.epochs=0.5"])
  assert (out / "metrics.jsonl").read_text() == (
      out2 / "metrics.jsonl").read_text()


def test_python_dash_m_entry_point_help():
  r = subprocess.run([sys.executable, "-m", "lrmeta", "--help"],
                     capture_output=True, text=True, check=True)
  assert "train" in r.stdout


@pytest.mark.slow
def test_select_command_end_to_end(tmp_path, capsys):
  out = tmp_path / "sel"
  main(["select", "--config", "configs/lrbench_fashion_mnist.py:small",
        "--quiet", f"--config.output_dir={out}",
        "--config.task.max_train=1000", "--config.task.num_val=200",
        "--config.task.batch_size=16", "--config.selection.budget=12",
        "--config.selection.eval_every=4",
        "--config.selection.eval_examples=100",
        "--config.selection.seeds=(0,)", "--config.selection.verify_seeds=(1,)",
        "--config.candidates=('fix-0.1','cos')"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  for k in ("target_accuracy", "steps_to_target_default",
            "steps_to_target_selected", "speedup_to_target"):
    assert k in summary
  assert 0.1 < summary["target_accuracy"] <= 1.0
  for f in ("config.json", "candidates.md", "candidates.csv", "verify.md",
            "policies.png", "summary.json"):
    assert (out / f).stat().st_size > 0, f
  # Both candidates were tried in stage 0 and appear in the table.
  table = (out / "candidates.csv").read_text()
  assert "fix(k0=0.1)" in table and "cos(" in table


def test_select_rejects_unknown_candidates(tmp_path):
  with pytest.raises(ValueError, match="unknown candidates"):
    main(["select", "--config", "configs/lrbench_fashion_mnist.py:small",
          "--quiet", f"--config.output_dir={tmp_path}",
          "--config.candidates=('fix-0.1','nope')"])


@pytest.mark.slow
def test_train_job_runs_policies_and_online_controllers(tmp_path, capsys):
  """`methods` accepts LRBench specs and hypergradient controllers by string;
  the rates they applied land in history.csv."""
  out = tmp_path / "ctl"
  methods = ("tri2(k0=0.01, k1=0.1, l=4)",
             "hd_sgd(initial_learning_rate=0.02, hyper_lr=0.01, "
             "rule='multiplicative')")
  main(["train", "--config", CFG + ":small", "--quiet",
        f"--config.output_dir={out}", f"--config.methods={methods!r}",
        "--config.train.epochs=0.25"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert set(summary["test_acc"]) == set(methods)
  curves = load_run(out)["curves"]
  tri = curves[methods[0]]["lr"][0]
  # Triangle2 (LRBench): from k0 up to k1 over l steps, back down over l.
  np.testing.assert_allclose(tri[[0, 4, 8]], [0.01, 0.1, 0.01], rtol=1e-5)
  hd = curves[methods[1]]["lr"][0]
  assert np.all(np.isfinite(hd)) and np.ptp(hd) > 0  # the rate adapted
  assert abs(hd[0] - 0.02) < 0.02 * 0.011  # first step moves it <= beta


def test_train_job_names_a_bad_method(tmp_path):
  with pytest.raises(ValueError, match="tri9"):
    main(["train", "--config", CFG + ":small", "--quiet",
          f"--config.output_dir={tmp_path}",
          "--config.methods=('tri9(k0=0.1)',)"])
