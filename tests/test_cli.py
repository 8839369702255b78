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


def _one_error_line(capsys) -> str:
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: "), err
  return err[0]


def test_out_of_range_value_names_the_key(tmp_path, capsys):
  assert main(["train", "--config", CFG + ":small", "--quiet",
               "--config.task.label_noise=1.5",
               f"--config.output_dir={tmp_path}"]) == 2
  assert "task.label_noise" in _one_error_line(capsys)


@pytest.mark.slow
def test_small_main_job_writes_a_complete_results_folder(tmp_path, capsys):
  out = tmp_path / "run"
  assert main(["train", "--config", CFG + ":small", "--quiet",
               f"--config.output_dir={out}", "--config.methods=('cosine',)",
               "--config.train.epochs=0.5"]) == 0
  printed = capsys.readouterr().out.strip().splitlines()
  summary = json.loads(printed[-1])
  for f in ("config.json", "data.json", "metrics.jsonl", "history.csv",
            "summary.md", "curves.png"):
    assert (out / f).stat().st_size > 0, f
  # Where the data came from: printed first and kept in data.json.
  data = json.loads((out / "data.json").read_text())
  assert list(data) == ["fashion_mnist"]
  assert data["fashion_mnist"]["label"] == "Fashion-MNIST"
  assert printed[0] == (f"data: fashion_mnist: Fashion-MNIST from "
                        f"{data['fashion_mnist']['path']} "
                        f"({data['fashion_mnist']['how']})")
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


def test_select_rejects_unknown_candidates(tmp_path, capsys):
  assert main(["select", "--config", "configs/lrbench_fashion_mnist.py:small",
               "--quiet", f"--config.output_dir={tmp_path}",
               "--config.candidates=('fix-0.1','nope')"]) == 2
  line = _one_error_line(capsys)
  assert "unknown candidates" in line and "'nope'" in line


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


def test_train_job_names_a_bad_method(tmp_path, capsys):
  assert main(["train", "--config", CFG + ":small", "--quiet",
               f"--config.output_dir={tmp_path}",
               "--config.methods=('tri9(k0=0.1)',)"]) == 2
  assert "tri9" in _one_error_line(capsys)


def test_debug_shows_the_exception(tmp_path, monkeypatch):
  args = ["train", "--config", CFG + ":small", "--quiet",
          f"--config.output_dir={tmp_path}", "--config.learning_rate=-1"]
  with pytest.raises(ValueError, match="learning_rate"):
    main(args + ["--debug"])
  monkeypatch.setenv("LRMETA_DEBUG", "1")
  with pytest.raises(ValueError, match="learning_rate"):
    main(args)


@pytest.mark.parametrize("command,config,variants", [
    ("train", "configs/fashion_mnist.py", ("small",)),
    ("select", "configs/lrbench_fashion_mnist.py", ("small",)),
    ("meta-train", "configs/mlrsnet_fmnist.py", ("small_es", "debug")),
    ("rl-train", "configs/rl_fmnist.py", ("xu2017_small", "cifar_small")),
    ("evaluate", "configs/evaluate_transfer.py",
     ("small", "tiny", "published_fmnist", "published_cifar")),
])
def test_subcommand_help_explains_configs_and_environment(
    command, config, variants, capsys):
  with pytest.raises(SystemExit) as e:
    main([command, "--help"])
  assert e.value.code == 0
  text = capsys.readouterr().out
  assert f"example:\n  lrmeta {command} --config {config}" in text
  assert f"config file: {config}" in text
  for v in variants:
    assert repr(v) in text, v
  for word in ("--config.KEY=VALUE", "output_dir", "LRMETA_DATA_DIR",
               "LRMETA_CIFAR10_JPEG", "LRMETA_DEBUG", "JAX_PLATFORMS",
               "--debug"):
    assert word in text, word


def test_space_separated_override_is_joined(tmp_path, capsys):
  assert main(["train", "--config", CFG + ":small",
               f"--config.output_dir={tmp_path}", "--config.learning_rate",
               "-2"]) == 2
  assert "got -2.0" in _one_error_line(capsys)


@pytest.mark.parametrize("command", ["train", "select", "meta-train",
                                     "rl-train"])
def test_help_examples_are_valid_commands(command):
  """Each example in the help passes the checks the CLI runs before a job."""
  import shlex
  from lrmeta.experiments.cli import COMMANDS
  from lrmeta.experiments.validate import validate
  argv = shlex.split(COMMANDS[command][3])
  assert argv[:2] == ["lrmeta", command] and argv[2] == "--config"
  cfg = apply_overrides(load_config(argv[3]), argv[4:])
  validate(cfg, command)


def test_bare_string_for_a_tuple_of_strings_is_one_entry():
  cfg = load_config(CFG + ":small")
  apply_overrides(cfg, ["--config.methods=cosine",
                        "--config.seeds=(2,)"])
  assert tuple(cfg.methods) == ("cosine",) and tuple(cfg.seeds) == (2,)
  with pytest.raises(ValueError, match="'seeds'"):
    apply_overrides(cfg, ["--config.seeds=two"])  # ints: no such shortcut
