"""Reinforcement-learning controllers: the LR-control environment (one task
or the task family), PPO and the actor-critic of Xu, Qin et al. (2017)."""

from lrmeta.rl.actor_critic import (ACConfig, ACState, ac_episode, ac_init,
                                    train_actor_critic)
from lrmeta.rl.env import (EnvState, LREnv, LREnvConfig, QuadraticLREnv,
                           env_cycle, policy_signature, rl_signals, rollout)
from lrmeta.rl.family import (family_envs, family_policy_config,
                              held_out_shapes, training_shapes)
from lrmeta.rl.ppo import (PPOConfig, PPOState, ppo_init, ppo_iteration,
                           train_ppo)

__all__ = ["ACConfig", "ACState", "EnvState", "LREnv", "LREnvConfig",
           "PPOConfig", "PPOState", "QuadraticLREnv", "ac_episode", "ac_init",
           "env_cycle", "family_envs", "family_policy_config",
           "held_out_shapes", "policy_signature", "ppo_init", "ppo_iteration",
           "rl_signals", "rollout", "train_actor_critic", "train_ppo",
           "training_shapes"]
