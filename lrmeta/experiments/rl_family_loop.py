"""The training runs behind `lrmeta rl-train` over the task family: the
family environments' configuration, the training shapes, and one trainer
(PPO, actor-critic or whole-run ES) per call of :func:`train`, each saving
its frozen actor for ``lrmeta evaluate``."""

from __future__ import annotations

import math
import pathlib
import time

import jax

from lrmeta import learned
from lrmeta.experiments import family_loop, rl_loop
from lrmeta.experiments import results as res
from lrmeta.experiments.config import ConfigError
from lrmeta.experiments.family_loop import meta_train_family
from lrmeta.learned import rl_policy as rl
from lrmeta.rl.env import LREnvConfig
from lrmeta.rl.family import family_envs
from lrmeta.rl.family import training_shapes as rl_training_shapes
from lrmeta.tasks.family import Family, Instance

ALGOS = ("ppo", "actor_critic", "es")
LABELS = {"ppo": "RL policy (PPO)", "actor_critic": "RL policy (actor-critic)",
          "es": "RL policy (ES)"}
TRANSFERS = ("cnn", "cifar")
# The family set-up of the RL policy (shared with `lrmeta meta-train`).
policy_config = family_loop.rl_policy_config
saved_config = family_loop.rl_saved_config


def env_config(cfg, action: str) -> LREnvConfig:
  """The environments' configuration (``cfg.env``)."""
  return rl_loop.env_config(cfg, policy_config(cfg, action))


def shapes_of(cfg, family: Family) -> tuple[Instance, ...]:
  """The training shapes every trainer uses (no held-out shape)."""
  return rl_training_shapes(jax.random.key(cfg.family.shapes_seed),
                            int(cfg.family.train_shapes), family)


def episodes(cfg, algo: str) -> int:
  """Training episodes (whole runs) of a trainer; ES gets PPO's."""
  if algo == "actor_critic":
    return cfg.actor_critic.episodes * cfg.actor_critic.num_envs
  return cfg.ppo.iterations * cfg.ppo.num_envs


def _es_view(cfg):
  """``cfg`` as :func:`meta_train_family` reads it: the RL policy as the
  controller, meta-steps from the episode budget."""
  c = cfg.copy_and_resolve_references()
  with c.unlocked():
    c.controller = {"name": rl.NAME, "action": es_action(cfg)}
    c.meta.meta_steps = max(1, math.ceil(episodes(cfg, "es")
                                         / (2 * cfg.meta.es_pairs)))
  return c


def es_action(cfg) -> str:
  """The ES-trained actor's head (``cfg.meta.action``, default
  discrete)."""
  return cfg.meta.get("action", "discrete")


def action_of(cfg, algo: str) -> str:
  """The actor head ``algo`` trains."""
  if algo == "actor_critic":
    return "continuous"
  return es_action(cfg) if algo == "es" else "discrete"


def train(cfg, algo: str, family: Family, shapes, out: pathlib.Path,
          quiet: bool) -> dict:
  """Trains the actor by ``algo``; saves it under ``out / algo /
  "controller"``; returns ``{"actor", "config", "history", "episodes",
  "seconds"}`` (``history``: per iteration, or ES's meta-trace)."""
  folder = out / algo
  folder.mkdir(parents=True, exist_ok=True)
  t0 = time.perf_counter()
  action = action_of(cfg, algo)
  config = saved_config(cfg, action, algo=algo,
                        episodes=episodes(cfg, algo),
                        train_shapes=[s.name for s in shapes])
  if algo == "es":
    c = _es_view(cfg)
    actor0 = rl.initial_actor(policy_config(cfg, action), jax.random.fold_in(
        jax.random.key(cfg.seed), 1), cfg.env.keep_bias)
    mt = meta_train_family(c, folder, quiet, theta0=actor0, shapes=shapes)
    actor, history = mt["theta"], mt["trace"]
    config["es_cosine"] = mt["es_cosine"]
  elif algo in ("ppo", "actor_critic"):
    c = cfg.copy_and_resolve_references()
    with c.unlocked():
      c.algo = algo
    envs = family_envs(shapes, env_config(cfg, action), cfg.env.decisions,
                       family=family)
    actor, history = rl_loop.train_policy(c, list(envs), folder, quiet=quiet)
    res.write_jsonl(folder / "training.jsonl", history)
  else:
    raise ConfigError(f"config key 'algos' holds {algo!r}; use some of "
                      f"{ALGOS}")
  learned.save(str(folder / "controller"), actor, config)
  return {"actor": actor, "config": config, "history": history,
          "episodes": episodes(cfg, algo),
          "seconds": time.perf_counter() - t0}


__all__ = ["ALGOS", "LABELS", "TRANSFERS", "action_of", "env_config",
           "episodes", "es_action", "policy_config", "saved_config",
           "shapes_of", "train"]
