"""`lrmeta rl-train` over the task family: the policy's budgets, whole-run ES
on the RL actor (with the validation signals it reads), the config's
checks and the job end to end."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest

from lrmeta import learned
from lrmeta.experiments import family_loop, rl_family, rl_family_loop
from lrmeta.experiments.config import ConfigError, load_config
from lrmeta.experiments.validate import validate
from lrmeta.learned import rl_policy as rl
from lrmeta.learned.rl_policy import scaled_policy_config
from lrmeta.meta import family as runs
from lrmeta.tasks.family import Instance, instance_task

DEBUG = "configs/rl_family.py:debug"


def test_policy_takes_the_same_decisions_on_every_budget():
  cfg = load_config("configs/rl_family.py:small")
  pcfg = rl_family.policy_config(cfg)
  assert pcfg.features == "scale_free" and pcfg.action == "discrete"
  for steps in cfg.family.num_steps:
    scaled = scaled_policy_config(pcfg, steps)
    assert scaled.num_decisions == cfg.env.decisions
    assert scaled.steps_per_action * cfg.env.decisions == steps
  saved = rl_family.saved_config(cfg, "continuous", algo="actor_critic")
  assert rl.policy_config(saved).action == "continuous"
  assert saved["base_lr"] == cfg.env.base_lr and saved["algo"] == "actor_critic"
  # ES gets as many whole runs as PPO has episodes.
  view = rl_family_loop._es_view(cfg)  # pylint: disable=protected-access
  assert (2 * view.meta.es_pairs * view.meta.meta_steps
          >= rl_family.episodes(cfg, "ppo")
          > 2 * view.meta.es_pairs * (view.meta.meta_steps - 1))


def test_config_errors_name_the_key():
  cfg = load_config(DEBUG)
  cfg.env.decisions = 3  # does not divide the budgets (20, 40)
  with pytest.raises(ConfigError, match="env.decisions"):
    rl_family.policy_config(cfg)
  cfg = load_config(DEBUG)
  cfg.algos = ("ppo", "reinforce")
  with pytest.raises(ConfigError, match="algos"):
    validate(cfg, "rl-train")
  cfg = load_config(DEBUG)
  cfg.env.base_schedule = "linear"
  with pytest.raises(ConfigError, match="env.base_schedule"):
    validate(cfg, "rl-train")
  cfg = load_config(DEBUG)
  cfg.transfer.cifar.steps = 0
  with pytest.raises(ConfigError, match="transfer.cifar.steps"):
    validate(cfg, "rl-train")


def test_family_es_scores_the_rl_actor_with_its_validation_signal():
  """ES on the actor runs each perturbed policy with the signals it reads in
  deployment (its validation loss once per decision): the fitness equals
  the normalised loss of the same run trained by hand with those signals,
  and differs from a run without them (the gap feature then reads 0)."""
  cfg = load_config("configs/family_es.py:debug")
  cfg.controller.name = "rl_policy"
  cfg.controller.base_lr = 0.1
  cfg.meta.shapes_per_step = 1
  config = family_loop.SETUPS["rl_policy"].config(cfg)
  assert config["policy"]["features"] == "scale_free"
  kind = learned.get("rl_policy")
  theta = kind.init(jax.random.key(0), config)
  # A policy that reads only the validation gap (feature 3): it halves the
  # rate when validation loss is below the training loss, doubles it when
  # above, and keeps it when the gap reads 0 (no validation signal).
  layers = sorted(theta["params"], key=lambda n: int(n.split("_")[-1]))
  for i, name in enumerate(layers):
    kernel = np.zeros(theta["params"][name]["kernel"].shape, np.float32)
    if i == 0:
      kernel[3] = 50.0
    elif i < len(layers) - 1:
      kernel[:] = 1.0 / kernel.shape[0]
    else:
      kernel[:, 0], kernel[:, -1] = -10.0, 10.0
    theta["params"][name]["kernel"] = kernel
  shape = Instance("fashion_mnist", 7, (16,), batch_size=32, num_steps=20,
                   max_train=10_000)
  est = family_loop.make_estimator(cfg, config, (shape,), num_pairs=2)
  inst = (dataclasses.replace(shape, seed=3),)
  fit = est.fitness(theta, inst)
  task = instance_task(shape)
  key = runs.group_keys(inst)[0]
  opt = kind.optimizer(theta, config, 20)
  with_signals = runs.val_loss_after_training(
      task, opt, key, 20, signals=kind.signals(config, 20))
  without = runs.val_loss_after_training(task, opt, key, 20)
  ref = runs.reference_losses(inst)[0]
  np.testing.assert_allclose(fit[0], float(with_signals) / ref, rtol=1e-4)
  assert abs(float(with_signals) - float(without)) > 1e-6
  # One outer step of the shared meta-trainer moves the actor.
  grad, metrics = est.estimate_with_metrics(theta, jax.random.key(2))
  assert metrics["num_ok"] == 2
  assert any(np.any(g != 0) for g in jax.tree.leaves(grad))


@pytest.mark.slow
def test_rl_family_job_end_to_end(tmp_path, capsys):
  """PPO, the actor-critic and ES train the actor over family shapes; the
  policies transfer frozen; the saved controllers load; the summary holds
  the paired intervals and the observation ranges are written."""
  from lrmeta.experiments.cli import main
  out = tmp_path / "run"
  assert main(["rl-train", "--config", DEBUG, "--quiet",
               f"--config.output_dir={out}", "--config.test.enabled=False",
               "--config.transfer.tasks=('cnn',)"]) == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  cfg = load_config(DEBUG)
  assert summary["episodes"] == cfg.ppo.iterations * cfg.ppo.num_envs
  assert set(summary["trainers"]) == {"ppo", "actor_critic", "es"}
  d = summary["transfer_cnn_vs_cosine"]
  assert d["ci_low"] <= d["mean"] <= d["ci_high"]
  assert "transfer_cifar_vs_cosine" not in summary
  best = summary["transfer_cnn_vs_best"]
  assert best["verdict"] in ("better", "worse", "tie") and best["n"] == len(
      cfg.transfer.cnn.test_seeds)
  ppo_log = (out / "ppo" / "training.jsonl").read_text().splitlines()
  assert len(ppo_log) == cfg.ppo.iterations
  es_trace = [json.loads(x) for x in
              (out / "es" / "meta_metrics.jsonl").read_text().splitlines()]
  assert es_trace[-1]["meta_step"] == 2  # ceil(8 episodes / 4 runs a step)
  for algo, action in (("ppo", "discrete"), ("actor_critic", "continuous"),
                       ("es", "continuous")):
    saved = learned.load(str(out / algo / "controller"))
    assert saved.kind == "rl_policy"
    assert saved.config["policy"]["action"] == action
    assert saved.config["policy"]["features"] == "scale_free"
  features = (out / "features.md").read_text()
  assert "log val/train" in features and "transfer cnn" in features
  for f in ("summary.md", "training_ppo.png", "training_actor_critic.png",
            "meta_training.png", "timings.json"):
    assert (out / f).stat().st_size > 0, f
