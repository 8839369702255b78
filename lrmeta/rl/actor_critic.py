"""The actor-critic learning-rate controller of Xu, Qin, Wang and Liu (2017).

An actor network decides the learning-rate action from the state and a critic
network ``Q(s, a)`` judges that decision. Both learn online while the
(vmapped) training runs progress, one update per decision:

* the critic regresses the temporal-difference target
  ``r + gamma * Q(s', mu(s'))`` (zero bootstrap after the last decision);
* the actor follows the critic's action gradient (deterministic policy
  gradient), maximising ``Q(s, mu(s))``.

The actor is the continuous :class:`~lrmeta.controllers.rl_policy.PolicyNet`
(its mean output is the action; Gaussian exploration noise is added while
training), so the trained actor deploys unchanged through
:func:`lrmeta.controllers.rl_policy.rl_lr_policy` in deterministic mode.

What is the paper's and what is lrmeta's (no authors' code was released to
follow; the paper's text is the source):

* The paper's: an actor proposes the learning rate from the state, a critic
  judges the proposal and trains the actor; both learn online during
  training; the training-loss reward (``LREnvConfig(reward="train_loss")``).
* lrmeta's: the action is a log-factor on the rate (the paper's actor
  outputs the rate itself); it is taken every N steps, not every step; the
  actor is an MLP on lrmeta's normalised features (the paper's actor is
  recurrent, on the model's state); the critic is ``Q(s, a)`` trained with
  a one-step TD target and the actor follows its action gradient (DDPG-style
  deterministic policy gradient); the reward is lrmeta's telescoping
  improvement plus a final term (:mod:`lrmeta.rl.env`); the paper's feeding
  of different minibatches to actor and critic is not reproduced (the critic
  sees the validation-based reward, the actor training features); SGD with
  momentum is the inner optimizer.

References:
  Xu, Qin, Wang, Liu, "Reinforcement Learning for Learning Rate Control",
  arXiv:1705.11159, 2017. Silver et al., "Deterministic Policy Gradient
  Algorithms", ICML 2014.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers.rl_policy import make_policy_net
from lrmeta.meta.checkpoint import TreeCheckpointer
from lrmeta.rl.env import batched, env_cycle


class QNet(nn.Module):
  """The critic: ``Q(s, a)`` for a scalar action."""

  hidden: Sequence[int] = (64, 64)

  @nn.compact
  def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
    x = jnp.concatenate([obs, action[..., None]], -1)
    for h in self.hidden:
      x = nn.tanh(nn.Dense(h)(x))
    return nn.Dense(1)(x)[..., 0]


@dataclasses.dataclass(frozen=True)
class ACConfig:
  """Actor-critic hyperparameters."""

  num_envs: int = 8
  episodes: int = 20
  gamma: float = 0.95
  actor_lr: float = 1e-3
  critic_lr: float = 3e-3
  noise_std: float = 0.3
  critic_hidden: tuple[int, ...] = (64, 64)
  seed: int = 0
  checkpoint_dir: str | None = None
  checkpoint_every: int = 5


class ACState(NamedTuple):
  params: Any  # {"actor": ..., "critic": ...}
  actor_opt: optax.OptState
  critic_opt: optax.OptState
  episode: jax.Array
  key: jax.Array  # uint32 key data


def _check(env):
  if env.policy_cfg.action != "continuous":
    raise ValueError("the actor-critic needs PolicyConfig(action='continuous')")


def ac_init(env, cfg: ACConfig) -> ACState:
  _check(env)
  key = jax.random.key(cfg.seed)
  k_a, k_c, key = jax.random.split(key, 3)
  obs = jnp.zeros((env.obs_dim,), jnp.float32)
  params = {"actor": make_policy_net(env.policy_cfg).init(k_a, obs),
            "critic": QNet(cfg.critic_hidden).init(k_c, obs, jnp.zeros(()))}
  return ACState(params, optax.adam(cfg.actor_lr).init(params["actor"]),
                 optax.adam(cfg.critic_lr).init(params["critic"]),
                 jnp.zeros((), jnp.int32), jax.random.key_data(key))


def ac_episode(env, cfg: ACConfig, state: ACState
               ) -> tuple[ACState, dict[str, jax.Array]]:
  """One vmapped batch of episodes with online actor and critic updates."""
  pcfg = env.policy_cfg
  actor, critic = make_policy_net(pcfg), QNet(cfg.critic_hidden)
  a_tx, c_tx = optax.adam(cfg.actor_lr), optax.adam(cfg.critic_lr)
  key = jax.random.wrap_key_data(state.key)
  key, k_reset, k_noise = jax.random.split(key, 3)
  env_states, obs = batched(env, "reset",
                            jax.random.split(k_reset, cfg.num_envs))
  horizon = env.horizon

  def mu(p, o):
    return actor.apply(p, o)[0][..., 0]

  def body(carry, t):
    es, o, params, a_opt, c_opt = carry
    noise = cfg.noise_std * jax.random.normal(jax.random.fold_in(k_noise, t),
                                              (cfg.num_envs,))
    a = mu(params["actor"], o) + noise
    es, o2, r, _ = batched(env, "step", es, a)
    last = t == horizon - 1
    fr = jax.lax.cond(last, lambda s: batched(env, "final_reward", s)[0],
                      lambda s: jnp.zeros((cfg.num_envs,)), es)
    r = r + fr
    q_next = critic.apply(params["critic"], o2, mu(params["actor"], o2))
    target = jax.lax.stop_gradient(
        r + jnp.where(last, 0.0, cfg.gamma) * q_next)

    def c_loss(cp):
      return ((critic.apply(cp, o, a) - target) ** 2).mean()

    cl, cg = jax.value_and_grad(c_loss)(params["critic"])
    cu, c_opt = c_tx.update(cg, c_opt, params["critic"])
    cp = optax.apply_updates(params["critic"], cu)

    def a_loss(ap):
      return -critic.apply(cp, o, mu(ap, o)).mean()

    al, ag = jax.value_and_grad(a_loss)(params["actor"])
    au, a_opt = a_tx.update(ag, a_opt, params["actor"])
    params = {"actor": optax.apply_updates(params["actor"], au), "critic": cp}
    return (es, o2, params, a_opt, c_opt), {"reward": r, "critic_loss": cl,
                                            "actor_loss": al}

  (es, _, params, a_opt, c_opt), m = jax.lax.scan(
      body, (env_states, obs, state.params, state.actor_opt, state.critic_opt),
      jnp.arange(horizon))
  metrics = {"episode_return": m["reward"].sum(0).mean(),
             "critic_loss": m["critic_loss"].mean(),
             "actor_loss": m["actor_loss"].mean()}
  return ACState(params, a_opt, c_opt, state.episode + 1,
                 jax.random.key_data(key)), metrics


def train_actor_critic(env, cfg: ACConfig, *, state: ACState | None = None,
                       callback: Callable[[int, dict], None] | None = None
                       ) -> tuple[ACState, list[dict]]:
  """Runs ``cfg.episodes`` batches of episodes; checkpoints like PPO.

  ``env`` is one environment or a sequence (batch ``i`` runs on
  ``env[i % len(env)]``, as in :func:`lrmeta.rl.train_ppo`)."""
  envs = env_cycle(env)
  state = ac_init(envs[0], cfg) if state is None else state
  history: list[dict] = []
  ckpt = TreeCheckpointer(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
  if ckpt is not None and ckpt.latest_step() is not None:
    state, history = ckpt.restore(state)
    state = ACState(*state) if not isinstance(state, ACState) else state
  steps = [jax.jit(functools.partial(ac_episode, e, cfg)) for e in envs]
  for ep in range(int(state.episode), cfg.episodes):
    t0 = time.perf_counter()
    state, m = steps[ep % len(envs)](state)
    m = {k: float(v) for k, v in jax.device_get(m).items()}
    m["episode"] = ep + 1
    m["env_index"] = ep % len(envs)
    m["seconds"] = time.perf_counter() - t0
    history.append(m)
    if callback is not None:
      callback(ep + 1, m)
    if ckpt is not None and ((ep + 1) % cfg.checkpoint_every == 0
                             or ep + 1 == cfg.episodes):
      ckpt.save(ep + 1, state, history)
  if ckpt is not None:
    ckpt.close()
  return state, history
