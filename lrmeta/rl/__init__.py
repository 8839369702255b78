"""Reinforcement-learning controllers: the LR-control environment, PPO and
the actor-critic of Xu, Qin et al. (2017)."""

from lrmeta.rl.actor_critic import (ACConfig, ACState, ac_episode, ac_init,
                                    train_actor_critic)
from lrmeta.rl.env import (EnvState, LREnv, LREnvConfig, QuadraticLREnv,
                           env_cycle, rl_signals, rollout)
from lrmeta.rl.ppo import (PPOConfig, PPOState, ppo_init, ppo_iteration,
                           train_ppo)

__all__ = ["ACConfig", "ACState", "EnvState", "LREnv", "LREnvConfig",
           "PPOConfig", "PPOState", "QuadraticLREnv", "ac_episode", "ac_init",
           "env_cycle", "ppo_init", "ppo_iteration", "rl_signals", "rollout",
           "train_actor_critic", "train_ppo"]
