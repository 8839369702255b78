"""The RL training run behind ``lrmeta rl-train``: config -> task,
environments, trainer (PPO or actor-critic in lrmeta's environment, the
script's PPO in the ``"xu2019"`` environment), with a progress bar.

The actor starts close to "keep the rate" (``env.keep_bias``), and each
episode starts from a random rate around ``env.base_lr`` so that the policy
has to learn to correct the rate as well as to schedule it. The trainers
checkpoint to ``<out>/ckpt`` and a rerun resumes.
"""

from __future__ import annotations

import os

import jax
from tqdm.auto import tqdm

from lrmeta.controllers.rl_policy import PolicyConfig
from lrmeta.controllers.rl_xu2019 import Xu2019Config
from lrmeta.experiments import train_job
from lrmeta.experiments.config import ConfigError, check_range
from lrmeta.learned.rl_policy import initial_actor
from lrmeta.rl import (ACConfig, LREnv, LREnvConfig, PPOConfig, ppo_init,
                       train_actor_critic, train_ppo)
from lrmeta.rl.xu2019 import Xu2019TrainConfig, train_xu2019

ENV_MODES = ("lrmeta", "xu2019")
SCOPES = ("task", "family")


def choice(cfg, key: str, allowed: tuple[str, ...]) -> str:
  """The value of config key ``key`` (dotted), which must be one of
  ``allowed``."""
  node = cfg
  for part in key.split("."):
    if part not in node:
      raise ConfigError(f"config key {key!r} is missing; set it to one of "
                        f"{allowed}")
    node = node[part]
  if node not in allowed:
    raise ConfigError(f"config key {key!r} must be one of {allowed}, got "
                      f"{node!r}")
  return node


def xu2019_config(cfg, total_steps: int | None = None) -> Xu2019Config:
  """The controller of the ``"xu2019"`` environment (``cfg.xu2019``)."""
  x = cfg.xu2019
  return Xu2019Config(
      total_steps=int(total_steps or cfg.env.total_steps),
      keep_interval=x.keep_interval, val_examples=x.val_examples,
      action_std=x.action_std, clip_low=x.clip_low, clip_high=x.clip_high)


def train_xu2019_policy(cfg, task, *, quiet: bool = False):
  """The script's PPO in the ``"xu2019"`` environment; ``(actor,
  history)``."""
  x = cfg.xu2019
  check_range(cfg, "xu2019.episodes", 1)
  tc = Xu2019TrainConfig(episodes=x.episodes, base_lr=cfg.env.base_lr,
                         reward_baseline=x.reward_baseline,
                         logprob_of=x.logprob_of, seed=cfg.seed)
  bar = tqdm(total=x.episodes, desc="xu2019 PPO (episodes)", disable=quiet,
             dynamic_ncols=True)

  def callback(i, m):
    bar.n = i
    bar.set_postfix({"return": f"{m['episode_return']:.1f}",
                     "val_loss": f"{m['final_val_loss']:.3f}",
                     "final_lr": f"{m['final_lr']:.3g}"}, refresh=False)
    bar.refresh()

  try:
    params, history = train_xu2019(task, xu2019_config(cfg), tc,
                                   callback=callback)
  except ValueError as e:
    raise ConfigError(f"config section 'xu2019': {e}") from e
  bar.close()
  return params["actor"], history


def build_task(cfg):
  """The training task (small CNN / MLP widths come from ``cfg.model``)."""
  model_kwargs = {}
  if cfg.task.model == "small_cnn":
    model_kwargs = {"features": tuple(cfg.model.features),
                    "hidden": int(cfg.model.hidden)}
  elif cfg.task.model == "mlp":
    model_kwargs = {"hidden": (int(cfg.model.hidden),)}
  return train_job.build_task(cfg, model_kwargs)


def policy_config(cfg) -> PolicyConfig:
  """The policy's static configuration (``cfg.env``)."""
  e = cfg.env
  check_range(cfg, "env.steps_per_action", 1)
  check_range(cfg, "env.total_steps", 1)
  return PolicyConfig(steps_per_action=e.steps_per_action,
                      total_steps=e.total_steps, features=e.features,
                      action=e.action, factors=tuple(e.factors),
                      max_log_factor=e.max_log_factor,
                      probe_size=e.probe_size, hidden=tuple(e.hidden),
                      base_schedule=e.get("base_schedule", "constant"),
                      decision_spacing=e.get("decision_spacing", "uniform"))


def env_config(cfg, policy: PolicyConfig | None = None) -> LREnvConfig:
  """The environment's configuration (``cfg.env``; the policy of
  :func:`policy_config` unless ``policy`` is given)."""
  e = cfg.env
  check_range(cfg, "env.base_lr", 1e-8)
  check_range(cfg, "env.momentum", 0.0, 1.0)
  check_range(cfg, "env.init_log_lr_range", 0.0, 5.0)
  check_range(cfg, "env.final_weight", 0.0)
  policy = policy_config(cfg) if policy is None else policy
  return LREnvConfig(policy=policy, base_lr=e.base_lr,
                     momentum=e.momentum, val_batch_size=e.val_batch_size,
                     reward=e.reward, shaping=e.shaping,
                     final_weight=e.final_weight,
                     final_val_examples=e.final_val_examples,
                     init_log_lr_range=e.init_log_lr_range,
                     sequential=e.sequential)


def task_family_note(cfg, unit: str) -> str:
  """``"; <unit> alternate between ..."`` when the policy trained on
  label-noise copies of its task (``env.train_label_noise``), else ``""``.
  Runs from before the option have no such key in their ``config.json``."""
  noise = tuple(cfg.env.get("train_label_noise", ()))
  if not noise:
    return ""
  return (f"; {unit} alternate between the clean task and its training "
          f"labels with symmetric noise {list(noise)}")


def training_envs(cfg, task) -> list[LREnv]:
  """The environments the policy trains on: ``task`` itself, then the same
  task with each symmetric label-noise rate of ``env.train_label_noise``
  (training labels only; the validation split, and so the reward, stays
  clean). The trainers cycle through them, one iteration each."""
  envs = [LREnv(task, env_config(cfg))]
  for rate in cfg.env.train_label_noise:
    if not 0.0 < rate < 1.0:
      raise ConfigError(f"config key 'env.train_label_noise' must hold rates "
                       f"in (0, 1), got {tuple(cfg.env.train_label_noise)}")
    c = cfg.copy_and_resolve_references()
    c.task.label_noise = float(rate)
    envs.append(LREnv(build_task(c), env_config(cfg)))
  return envs


def train_policy(cfg, envs: list[LREnv], out, *, quiet: bool = False):
  """Trains the actor on ``envs`` (cycled, one iteration each); returns
  ``(actor, history)``."""
  pcfg = envs[0].policy_cfg
  ckpt = os.path.abspath(os.path.join(out, "ckpt"))
  if cfg.algo == "ppo":
    p = cfg.ppo
    check_range(cfg, "ppo.num_envs", 1)
    check_range(cfg, "ppo.iterations", 1)
    pc = PPOConfig(num_envs=p.num_envs, iterations=p.iterations,
                   epochs=p.epochs, minibatches=p.minibatches,
                   gamma=p.gamma, gae_lambda=p.gae_lambda,
                   clip_eps=p.clip_eps, ent_coef=p.ent_coef,
                   learning_rate=p.learning_rate, seed=cfg.seed,
                   checkpoint_dir=ckpt, checkpoint_every=p.checkpoint_every)
    total, unit = p.iterations, "iterations"
    actor0 = initial_actor(pcfg, jax.random.fold_in(jax.random.key(cfg.seed),
                                                    1), cfg.env.keep_bias)
    state = ppo_init(envs[0], pc, actor_params=actor0)
  elif cfg.algo == "actor_critic":
    a = cfg.actor_critic
    check_range(cfg, "actor_critic.episodes", 1)
    pc = ACConfig(num_envs=a.num_envs, episodes=a.episodes, gamma=a.gamma,
                  actor_lr=a.actor_lr, critic_lr=a.critic_lr,
                  noise_std=a.noise_std, seed=cfg.seed, checkpoint_dir=ckpt,
                  checkpoint_every=2)
    total, unit = a.episodes, "episode batches"
  else:
    raise ConfigError(f"config key 'algo' must be 'ppo' or 'actor_critic', "
                     f"got {cfg.algo!r}")
  bar = tqdm(total=total, desc=f"{cfg.algo} ({unit})", disable=quiet,
             dynamic_ncols=True)

  def callback(i, m):
    bar.n = i
    post = {"return": f"{m['episode_return']:+.3f}"}
    if "final_val_acc" in m:
      post["val_acc"] = f"{m['final_val_acc']:.4f}"
      post["final_lr"] = f"{m['final_lr']:.3g}"
    bar.set_postfix(post, refresh=False)
    bar.refresh()

  if cfg.algo == "ppo":
    state, history = train_ppo(envs, pc, state=state, callback=callback)
  else:
    state, history = train_actor_critic(envs, pc, callback=callback)
  bar.close()
  return state.params["actor"], history
