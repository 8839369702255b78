"""The environment of Xu, Dai, Kemp, Metz (2019) as their code builds it."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.controllers.rl_xu2019 import (FeatState, Xu2019Config, decides,
                                          init_actor, init_features,
                                          multiplier, track, xu2019_adam,
                                          xu2019_signals)
from lrmeta.rl.xu2019 import Xu2019TrainConfig, rewards, train_xu2019
from lrmeta.tasks import make_task
from lrmeta.train import run_steps, init_state


def test_action_maps_to_the_scripts_multiplier():
  cfg = Xu2019Config()
  m = multiplier(cfg, jnp.asarray([0.5, -0.2, 0.15, 3.0, -3.0]))
  np.testing.assert_allclose(m, [1.035, 0.965, 1.0, 1.035, 0.965], atol=1e-6)


def test_every_step_decides_and_the_last_nine_always():
  cfg = Xu2019Config(total_steps=30, keep_interval=7)
  d = [bool(decides(cfg, jnp.asarray(i))) for i in range(30)]
  assert [i for i in range(30) if d[i]] == [0, 7, 14] + list(range(21, 30))
  assert all(bool(decides(Xu2019Config(total_steps=30), jnp.asarray(i)))
             for i in range(30))


def test_nine_features_on_a_hand_made_batch():
  cfg = Xu2019Config()
  probs = jnp.asarray([[0.5, 0.5], [1.0, 0.0]])
  prev = jnp.asarray([[0.5, 0.5], [0.5, 0.5]])
  params = {"Dense_0": {"kernel": jnp.asarray([[1.0, 3.0]]),
                        "bias": jnp.zeros(2)},
            "Dense_1": {"kernel": jnp.asarray([[2.0], [4.0], [6.0]]),
                        "bias": jnp.zeros(1)}}
  fs = FeatState(jnp.ones(9), jnp.zeros(()), jnp.zeros(()), prev,
                 jnp.zeros((), jnp.int32))
  fs1 = track(cfg, fs, val_loss=0.7, train_loss=0.9, probs=probs,
              params=params, rate=0.02)
  var = np.var([0.5, 0.5, 1.0, 0.0])            # 0.125
  change = np.var([0.0, 0.0, 0.5, -0.5])        # 0.125
  expected = [0.7, np.log(var), np.log(change), 0.9, 2.0, 1.0, 4.0, 8 / 3,
              0.02]
  np.testing.assert_allclose(fs1.obs, expected, rtol=1e-5)
  # Second decision: the EMAs (decay 0.8) move a fifth of the way.
  fs2 = track(cfg, fs1, val_loss=0.6, train_loss=0.8, probs=prev,
              params=params, rate=0.02)
  np.testing.assert_allclose(fs2.obs[1], 0.8 * np.log(var) + 0.2 * np.log(
      1e-10), rtol=1e-5)
  np.testing.assert_allclose(fs2.obs[2], 0.8 * np.log(change) + 0.2 * np.log(
      change + 1e-10), rtol=1e-5)
  assert init_features(jax.random.key(0), 4, 10).obs.tolist() == [1.0] * 9


def test_rewards_fixed_average_exponential_ratio():
  v = jnp.asarray([1.0, 0.5, 2.0])
  mask = jnp.asarray([True, False, True])
  tc = lambda b: Xu2019TrainConfig(reward_baseline=b)
  np.testing.assert_allclose(rewards(tc("fixed"), v, mask), [1.0, 1.5, 0.0])
  np.testing.assert_allclose(rewards(tc("ratio"), v, mask), [0.0, 2.0, -1.0])
  # Running baselines move on decision steps only.
  np.testing.assert_allclose(rewards(tc("average"), v, mask),
                             [0.0, 0.5, -0.5])
  np.testing.assert_allclose(rewards(tc("exponential"), v, mask),
                             [0.0, 0.5, 1.2 - 2.0], rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_task():
  return make_task("fashion_mnist", "mlp", batch_size=8,
                   data_kwargs={"max_train": 200, "num_val": 64},
                   model_kwargs={"hidden": (8,)})


def test_frozen_controller_multiplies_the_adam_rate(tiny_task):
  cfg = Xu2019Config(total_steps=5, val_examples=32)
  actor = init_actor(cfg, jax.random.key(0))
  opt = xu2019_adam(actor, cfg, 0.01, (8, 10))
  s = init_state(tiny_task, opt, jax.random.key(1))
  # One update is Adam's update times the first decision's multiplier.
  grads = jax.tree.map(jnp.ones_like, s.params)
  extra = {"value": jnp.asarray(2.0), "val_value": jnp.asarray(2.1),
           "train_probs": jnp.full((8, 10), 0.1)}
  u, st = opt.update(grads, s.opt_state, s.params, **extra)
  ua, _ = optax.adam(0.01).update(grads, optax.adam(0.01).init(s.params))
  m = float(st[1].multiplier)
  assert 0.965 - 1e-6 <= m <= 1.035 + 1e-6
  np.testing.assert_allclose(jax.tree.leaves(u)[0], m * jax.tree.leaves(ua)[0],
                             rtol=1e-5)
  s, metrics = run_steps(tiny_task, opt, s, 5, signals=xu2019_signals(cfg))
  ctl = s.opt_state[1]
  lr = np.asarray(metrics["lr"])
  ratios = lr[1:] / lr[:-1]
  assert np.all((ratios >= 0.965 - 1e-6) & (ratios <= 1.035 + 1e-6))
  np.testing.assert_allclose(ctl.feats.obs[8], lr[-1], rtol=1e-5)
  assert int(ctl.feats.decisions) == 5


def test_training_runs_and_reports_per_episode(tiny_task):
  cfg = Xu2019Config(total_steps=10, val_examples=32)
  params, hist = train_xu2019(tiny_task, cfg, Xu2019TrainConfig(episodes=2))
  assert [h["iteration"] for h in hist] == [1, 2]
  assert all(np.isfinite(h["episode_return"]) for h in hist)
  assert 0.965**10 * 0.01 * 0.999 <= hist[0]["final_lr"] <= (
      1.035**10 * 0.01 * 1.001)
  assert set(params) == {"actor", "critic"}


def test_job_runs_the_authors_environment_and_names_the_mode(tmp_path, capsys):
  from lrmeta.cli import main
  out = tmp_path / "x"
  assert main(["rl-train", "--config", "configs/rl_fmnist.py:xu2019_debug",
               "--quiet", f"--config.output_dir={out}"]) == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary["env_mode"] == "xu2019"
  assert set(summary["tuned_lr"]) == {"cosine", "wsd", "rl_policy"}
  assert summary["rl_vs_best_schedule"]["n"] == 2
  text = (out / "summary.md").read_text()
  assert "'xu2019' environment" in text and "inner optimizer adam" in text


def test_scope_and_mode_are_explicit_fields():
  from lrmeta.experiments.config import ConfigError, load_config
  from lrmeta.experiments.jobs import rl_train
  cfg = load_config("configs/rl_fmnist.py:xu2019_debug")
  with cfg.unlocked():
    cfg.env.mode = "paper"
  with pytest.raises(ConfigError, match="env.mode"):
    rl_train.run(cfg, quiet=True)
  cfg = load_config("configs/rl_fmnist.py:debug")
  with cfg.unlocked():
    del cfg["scope"]
  with pytest.raises(ConfigError, match="'scope' is missing"):
    rl_train.run(cfg, quiet=True)
