"""`lrmeta evaluate` and `ckpt:` methods: a saved controller applied frozen."""

import json

import jax
import numpy as np
import pytest

from lrmeta import learned
from lrmeta.cli import main
from lrmeta.controllers.mlr_snet import init_mlr_snet_params
from lrmeta.experiments.results import load_run

CFG = "configs/evaluate_transfer.py:tiny"


@pytest.fixture(scope="module")
def mlr_ckpt(tmp_path_factory):
  """An (untrained) MLR-SNet saved the way `lrmeta meta-train` saves it."""
  d = tmp_path_factory.mktemp("ctl") / "controller"
  learned.save(str(d), init_mlr_snet_params(jax.random.key(0)), {
      "controller": "mlr_snet", "hidden": 50, "num_classes": 10,
      "gamma": None, "momentum": 0.0, "weight_decay": 5e-4,
      "switch_fractions": [], "trained_on": "test", "horizon": 10})
  return str(d)


def test_kind_and_clear_errors(mlr_ckpt, tmp_path, capsys):
  assert learned.load(mlr_ckpt).kind == "mlr_snet"
  opt, _ = learned.frozen(mlr_ckpt, 20)
  assert hasattr(opt, "update")
  assert main(["evaluate", "--config", CFG, "--quiet",
               f"--config.output_dir={tmp_path}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "controller" in err[0]


def test_several_controllers_are_labelled_by_their_folders(mlr_ckpt,
                                                           tmp_path):
  from lrmeta.experiments.config import ConfigError
  from lrmeta.experiments.config import load_config
  from lrmeta.experiments.jobs.evaluate import controller_labels
  cfg = load_config(CFG)
  cfg.controller = mlr_ckpt
  assert list(controller_labels(cfg)) == ["mlr_snet (frozen)"]
  other = tmp_path / "other"
  learned.save(str(other), learned.load(mlr_ckpt).theta,
               learned.load(mlr_ckpt).config)
  cfg.controller = f"{mlr_ckpt}, {other}"
  assert list(controller_labels(cfg)) == ["mlr_snet (frozen, controller)",
                                          "mlr_snet (frozen, other)"]
  cfg.controller = f"{mlr_ckpt},{mlr_ckpt}"
  with pytest.raises(ConfigError, match="share the label"):
    controller_labels(cfg)


def test_a_shipped_controller_is_a_controller_by_name(mlr_ckpt):
  from lrmeta import pretrained
  from lrmeta.experiments.config import ConfigError, load_config
  from lrmeta.experiments.jobs.evaluate import controller_labels
  from lrmeta.experiments.validate import check_controller_dir
  cfg = load_config(CFG)
  cfg.controller = f"pretrained:learned_schedule_adam_aware,{mlr_ckpt}"
  labels = controller_labels(cfg)
  got = labels["learned_schedule (frozen, pretrained:learned_schedule_adam_aware)"]
  want = pretrained.load("learned_schedule_adam_aware")
  assert got.config == want.config
  assert list(labels)[1] == "mlr_snet (frozen, controller)"
  check_controller_dir("pretrained:learned_schedule_sgd")
  with pytest.raises(ConfigError, match="no shipped controller"):
    check_controller_dir("pretrained:no_such_controller")


@pytest.mark.slow
def test_evaluate_frozen_mlr_snet_against_tuned_cosine(mlr_ckpt, tmp_path,
                                                        capsys):
  out = tmp_path / "eval"
  main(["evaluate", "--config", CFG, "--quiet", f"--config.output_dir={out}",
        f"--config.controller={mlr_ckpt}"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary["controller"] == "mlr_snet"
  stage = summary["transfer_task"]
  accs = {n: float(v.split()[0]) for n, v in stage["test_acc"].items()}
  assert set(accs) == {"mlr_snet (frozen)", "cosine", "wsd"}
  assert stage["tuned_lr"]["cosine"] == pytest.approx(0.1)
  # The tuned baseline learns on real data; the untrained controller's
  # accuracy is only checked to be a real evaluation.
  assert 0.3 < accs["cosine"] <= 1.0
  assert 0.0 <= accs["mlr_snet (frozen)"] <= 1.0
  # One seed: the paired difference is the difference of the two runs.
  d = summary["transfer_task_vs_cosine"]["mlr_snet (frozen)"]
  assert d["mean"] == pytest.approx(
      100 * (accs["mlr_snet (frozen)"] - accs["cosine"]), abs=0.01)
  # The verdict is against the better of the two tuned baselines.
  best = summary["transfer_task_vs_best"]["mlr_snet (frozen)"]
  assert accs[best["baseline"]] == max(accs["cosine"], accs["wsd"])
  assert best["verdict"] in ("better", "worse", "tie")
  for f in ("config.json", "metrics.jsonl", "summary.md", "curves.png"):
    assert (out / f).stat().st_size > 0, f


@pytest.mark.slow
def test_train_job_takes_a_saved_controller(mlr_ckpt, tmp_path, capsys):
  out = tmp_path / "train"
  main(["train", "--config", "configs/fashion_mnist.py:small", "--quiet",
        f"--config.output_dir={out}", f"--config.methods=('ckpt:{mlr_ckpt}',)",
        "--config.train.epochs=0.25"])
  capsys.readouterr()
  lr = load_run(out)["curves"][f"ckpt:{mlr_ckpt}"]["lr"][0]
  # MLR-SNet's rate: positive, below its bound gamma (~0.67 for L0 ~ 2.3,
  # C = 10), and it changes as the loss it reads changes.
  assert np.all((lr > 0) & (lr < 1.0)) and np.ptp(lr) > 0
