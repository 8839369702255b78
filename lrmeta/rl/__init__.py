"""Reinforcement-learning controllers: lrmeta's LR-control environment (one
task or the task family) with PPO and an actor-critic modelled on Xu, Qin et
al. (2017), and the environment of Xu, Dai, Kemp, Metz (2019) as their code
builds it (:mod:`lrmeta.rl.xu2019`)."""

from lrmeta.rl.actor_critic import (ACConfig, ACState, ac_episode, ac_init,
                                    train_actor_critic)
from lrmeta.rl.env import (EnvState, LREnv, LREnvConfig, QuadraticLREnv,
                           env_cycle, policy_signature, rl_signals, rollout)
from lrmeta.rl.family import (family_envs, family_policy_config,
                              greedy_observations, held_out_shapes,
                              observation_quantiles, training_shapes)
from lrmeta.rl.ppo import (PPOConfig, PPOState, ppo_init, ppo_iteration,
                           train_ppo)

__all__ = ["ACConfig", "ACState", "EnvState", "LREnv", "LREnvConfig",
           "PPOConfig", "PPOState", "QuadraticLREnv", "ac_episode", "ac_init",
           "env_cycle", "family_envs", "family_policy_config",
           "greedy_observations", "observation_quantiles",
           "held_out_shapes", "policy_signature", "ppo_init", "ppo_iteration",
           "rl_signals", "rollout", "train_actor_critic", "train_ppo",
           "training_shapes"]
