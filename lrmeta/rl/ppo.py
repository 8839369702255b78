"""PPO with GAE over a vmapped batch of environments.

One iteration = ``num_envs`` whole episodes collected as one jitted program
(``vmap`` over environments inside a ``lax.scan`` over decisions), GAE
advantages, then ``epochs`` passes of minibatch updates of the clipped
surrogate objective with a value baseline and an entropy bonus:

.. math::
  L = -\\mathbb{E}\\,\\min(\\rho A, \\mathrm{clip}(\\rho, 1-\\epsilon,
  1+\\epsilon) A) + c_v \\mathbb{E}(V - R)^2 - c_H \\mathbb{E} H[\\pi]

Works with any environment exposing ``policy_cfg``, ``obs_dim``,
``horizon``, ``reset(key)``, ``step(state, action)`` and
``final_reward(state)`` (:class:`lrmeta.rl.env.LREnv`,
:class:`lrmeta.rl.env.QuadraticLREnv`). The actor is the
:class:`lrmeta.controllers.rl_policy.PolicyNet` that ``rl_lr_policy`` deploys.

References:
  Schulman et al., "Proximal Policy Optimization Algorithms", 2017;
  Schulman et al., "High-Dimensional Continuous Control Using Generalized
  Advantage Estimation", 2016; Xu, Dai, Kemp, Metz, arXiv:1909.09712, 2019.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.controllers.rl_policy import make_policy_net, policy_action
from lrmeta.meta.checkpoint import TreeCheckpointer
from lrmeta.rl.env import batched, env_cycle


class ValueNet(nn.Module):
  """The critic: an MLP from observations to a scalar value."""

  hidden: Sequence[int] = (64, 64)

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = obs
    for h in self.hidden:
      x = nn.tanh(nn.Dense(h)(x))
    return nn.Dense(1)(x)[..., 0]


@dataclasses.dataclass(frozen=True)
class PPOConfig:
  """PPO hyperparameters (defaults: Schulman et al. 2017's, small nets)."""

  num_envs: int = 8
  iterations: int = 50
  epochs: int = 4
  minibatches: int = 4
  gamma: float = 0.99
  gae_lambda: float = 0.95
  clip_eps: float = 0.2
  ent_coef: float = 0.01
  vf_coef: float = 0.5
  learning_rate: float = 3e-4
  max_grad_norm: float = 0.5
  critic_hidden: tuple[int, ...] = (64, 64)
  seed: int = 0
  checkpoint_dir: str | None = None
  checkpoint_every: int = 5


class PPOState(NamedTuple):
  params: Any  # {"actor": ..., "critic": ...}
  opt_state: optax.OptState
  iteration: jax.Array  # int32
  key: jax.Array  # uint32 key data


def log_prob_entropy(pcfg, net_out, action):
  """Log-probability of ``action`` and the policy's entropy."""
  if pcfg.action == "discrete":
    logp_all = jax.nn.log_softmax(net_out, -1)
    logp = jnp.take_along_axis(logp_all, action[..., None], -1)[..., 0]
    ent = -(jnp.exp(logp_all) * logp_all).sum(-1)
    return logp, ent
  mean, log_std = net_out
  mean, log_std = mean[..., 0], log_std[..., 0]
  z = (action - mean) / jnp.exp(log_std)
  logp = -0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)
  ent = log_std + 0.5 * math.log(2 * math.pi * math.e)
  return logp, ent


def _tx(cfg: PPOConfig):
  return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm),
                     optax.adam(cfg.learning_rate, eps=1e-5))


def ppo_init(env, cfg: PPOConfig, actor_params: Any = None) -> PPOState:
  """Fresh trainer state (optionally starting from given actor params)."""
  key = jax.random.key(cfg.seed)
  k_a, k_c, key = jax.random.split(key, 3)
  dummy = jnp.zeros((env.obs_dim,), jnp.float32)
  if actor_params is None:
    actor_params = make_policy_net(env.policy_cfg).init(k_a, dummy)
  params = {"actor": actor_params,
            "critic": ValueNet(cfg.critic_hidden).init(k_c, dummy)}
  return PPOState(params, _tx(cfg).init(params), jnp.zeros((), jnp.int32),
                  jax.random.key_data(key))


def gae(rewards, values, gamma, lam):
  """GAE over a ``[T, E]`` batch of whole episodes (terminal after T)."""
  next_values = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])])
  deltas = rewards + gamma * next_values - values

  def body(acc, d):
    acc = d + gamma * lam * acc
    return acc, acc

  _, adv = jax.lax.scan(body, jnp.zeros_like(deltas[0]), deltas[::-1])
  adv = adv[::-1]
  return adv, adv + values


def collect(env, pcfg, params, key, num_envs: int):
  """Whole episodes of ``num_envs`` environments under the stochastic policy."""
  actor, critic = make_policy_net(pcfg), None
  k_reset, k_act = jax.random.split(key)
  states, obs = batched(env, "reset", jax.random.split(k_reset, num_envs))

  def body(carry, t):
    s, o = carry
    out = actor.apply(params["actor"], o)
    a = policy_action(pcfg, out, jax.random.fold_in(k_act, t), False)
    logp, _ = log_prob_entropy(pcfg, out, a)
    s, o2, r, info = batched(env, "step", s, a)
    return (s, o2), {"obs": o, "action": a, "logp": logp, "reward": r,
                     "info": info}

  del critic
  (states, _), traj = jax.lax.scan(body, (states, obs),
                                   jnp.arange(env.horizon))
  fr, fm = batched(env, "final_reward", states)
  traj["reward"] = traj["reward"].at[-1].add(fr)
  traj["final"] = fm
  return traj


def ppo_iteration(env, cfg: PPOConfig, state: PPOState
                  ) -> tuple[PPOState, dict[str, jax.Array]]:
  """One PPO iteration (collect + update). Pure; jit with env/cfg static."""
  pcfg = env.policy_cfg
  actor, critic = make_policy_net(pcfg), ValueNet(cfg.critic_hidden)
  key = jax.random.wrap_key_data(state.key)
  key, k_col, k_perm = jax.random.split(key, 3)
  traj = collect(env, pcfg, state.params, k_col, cfg.num_envs)
  values = critic.apply(state.params["critic"], traj["obs"])
  adv, returns = gae(traj["reward"], values, cfg.gamma, cfg.gae_lambda)
  n = env.horizon * cfg.num_envs
  flat = jax.tree.map(lambda x: x.reshape((n,) + x.shape[2:]),
                      {"obs": traj["obs"], "action": traj["action"],
                       "logp": traj["logp"], "adv": adv, "ret": returns})
  mb = n // cfg.minibatches
  tx = _tx(cfg)

  def loss_fn(params, b):
    out = actor.apply(params["actor"], b["obs"])
    logp, ent = log_prob_entropy(pcfg, out, b["action"])
    a = b["adv"]
    a = (a - a.mean()) / (a.std() + 1e-8)
    ratio = jnp.exp(logp - b["logp"])
    pg = -jnp.minimum(ratio * a, jnp.clip(ratio, 1 - cfg.clip_eps,
                                          1 + cfg.clip_eps) * a).mean()
    v = critic.apply(params["critic"], b["obs"])
    vf = ((v - b["ret"]) ** 2).mean()
    ent = ent.mean()
    total = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
    return total, {"policy_loss": pg, "value_loss": vf, "entropy": ent,
                   "approx_kl": ((ratio - 1) - jnp.log(ratio)).mean()}

  def epoch(carry, k):
    params, opt_state = carry
    perm = jax.random.permutation(k, n)[:mb * cfg.minibatches]
    batches = jax.tree.map(
        lambda x: x[perm].reshape((cfg.minibatches, mb) + x.shape[1:]), flat)

    def minibatch(c, b):
      p, o = c
      (_, m), g = jax.value_and_grad(loss_fn, has_aux=True)(p, b)
      u, o = tx.update(g, o, p)
      return (optax.apply_updates(p, u), o), m

    (params, opt_state), m = jax.lax.scan(minibatch, (params, opt_state),
                                          batches)
    return (params, opt_state), m

  (params, opt_state), m = jax.lax.scan(
      epoch, (state.params, state.opt_state),
      jax.random.split(k_perm, cfg.epochs))
  metrics = {k: v[-1].mean() for k, v in m.items()}
  metrics["episode_return"] = traj["reward"].sum(0).mean()
  for k, v in traj["final"].items():
    metrics[f"final_{k}"] = v.mean()
  info = traj["info"]
  if "lr" in info:
    metrics["final_lr"] = info["lr"][-1, :, -1].mean()
  return PPOState(params, opt_state, state.iteration + 1,
                  jax.random.key_data(key)), metrics


_JIT_CACHE: dict = {}


def _jitted_iteration(env, cfg: PPOConfig):
  """One compiled iteration per (env, compute-relevant config), so resumed or
  extended runs do not recompile."""
  core = dataclasses.replace(cfg, iterations=0, seed=0, checkpoint_dir=None,
                             checkpoint_every=0)
  key = (id(env), core)
  if key not in _JIT_CACHE:
    _JIT_CACHE[key] = (env, jax.jit(functools.partial(ppo_iteration, env,
                                                      core)))
  return _JIT_CACHE[key][1]


def train_ppo(env, cfg: PPOConfig, *, state: PPOState | None = None,
              callback: Callable[[int, dict], None] | None = None,
              log_every: int = 1) -> tuple[PPOState, list[dict]]:
  """Runs ``cfg.iterations`` PPO iterations, resuming from a checkpoint.

  ``env`` is one environment or a sequence of them (a task family): iteration
  ``i`` collects its episodes on ``env[i % len(env)]`` (see
  :func:`lrmeta.rl.env.env_cycle`); its metrics carry that ``env_index``.
  With ``cfg.checkpoint_dir`` set, the trainer state is saved every
  ``checkpoint_every`` iterations (and at the end) and a later call with the
  same directory continues from the latest checkpoint.

  Returns:
    ``(state, history)``: the final trainer state (the deployable actor is
    ``state.params["actor"]``) and one metrics dict per iteration.
  """
  envs = env_cycle(env)
  state = ppo_init(envs[0], cfg) if state is None else state
  history: list[dict] = []
  ckpt = TreeCheckpointer(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
  if ckpt is not None and ckpt.latest_step() is not None:
    state, history = ckpt.restore(state)
    state = PPOState(*state) if not isinstance(state, PPOState) else state
  start = int(state.iteration)
  for it in range(start, cfg.iterations):
    t0 = time.perf_counter()
    state, m = _jitted_iteration(envs[it % len(envs)], cfg)(state)
    m = {k: float(v) for k, v in jax.device_get(m).items()}
    m["iteration"] = it + 1
    m["env_index"] = it % len(envs)
    m["seconds"] = time.perf_counter() - t0
    history.append(m)
    if callback is not None and (it + 1) % log_every == 0:
      callback(it + 1, m)
    if ckpt is not None and ((it + 1) % cfg.checkpoint_every == 0
                             or it + 1 == cfg.iterations):
      ckpt.save(it + 1, state, history)
  if ckpt is not None:
    ckpt.close()
  return state, history


def summarize(history: list[dict]) -> dict[str, np.ndarray]:
  """Per-iteration metrics as arrays."""
  if not history:
    return {}
  return {k: np.asarray([h[k] for h in history]) for k in history[0]}
