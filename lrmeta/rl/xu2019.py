"""The environment and trainer of Xu, Dai, Kemp, Metz (2019) as their code
builds them (``env.mode = "xu2019"``).

Source followed (Apache-2.0; read, not copied): google-research/google-research,
``adaptive_learning_rate_tuner/learn_adaptive_learning_rate.py`` at commit
0c1bbe5 ("the script"). The controller, its action, state and inner
optimizer are :mod:`lrmeta.controllers.rl_xu2019`; this module holds the
episode, the reward and the policy update.

* Episode: one training run of ``total_steps`` steps from a fresh
  initialisation and the rate 0.01 (``default_learning_rate``, line 39);
  every decision step gives one transition (observation before the step, the
  action, the reward, the observation after it).
* Reward (``reward_baseline``, lines 44-47; the branches after ``# Different
  reward functions.`` in ``main()``): ``"fixed"`` (the default) ``2 - v``
  with ``v`` the validation loss (``fixed_baseline_value`` 2.0, line 46);
  ``"average"``: the running mean of ``v`` minus ``v``; ``"exponential"``:
  an EMA (decay 0.8) of ``v`` minus ``v``; ``"ratio"``: ``2 / v - 2``
  (``reward_numerator``, line 47).
* Targets: one-step TD, ``r + 0.9 V(s')`` (``GAMMA``, line 58;
  ``td_reward = reward_t_ts + GAMMA * value_t``), no terminal cut; the
  advantage ``td - V(s)`` is computed once before the update passes
  (``AdaptiveTuner.update``).
* Update after every episode (``AdaptiveTuner.update``): the old policy is
  the current one; 10 passes (``same_batch_update_steps``, line 32) over the
  whole episode, each one actor step on the clipped surrogate (``EPSILON``
  0.2, line 59; probabilities floored by ``LOG_BASE`` 1e-10, line 60) with
  Adam 1e-3 (line 29) and every gradient tensor clipped to norm 5 (line 31,
  ``tf.clip_by_norm`` per variable), then one critic step (MLP 32 ReLU -> 1,
  squared TD error, Adam 1e-2, line 30, unclipped).
* The action whose probability the surrogate reads: the script appends
  ``action_multiplier`` (the mapped multiplier near 1) to ``action_t``, not
  the Gaussian sample; ``logprob_of="multiplier"`` (default) follows it,
  ``"sample"`` (lrmeta's option) uses the sample the Gaussian drew.

What the script records as the result, the test accuracy at the step of
best validation loss, is recorded by the job (:mod:`lrmeta.experiments.
jobs.rl_train`) at its evaluation points.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers.rl_xu2019 import (LOG_BASE, NUM_FEATURES,
                                          ActorNet, ScalarMLP, Xu2019Config,
                                          init_actor, xu2019_adam,
                                          xu2019_signals)
from lrmeta.train import init_state, train_step

REWARD_BASELINES = ("fixed", "average", "exponential", "ratio")


@dataclasses.dataclass(frozen=True)
class Xu2019TrainConfig:
  """The script's trainer settings (defaults: its flags and constants)."""

  episodes: int = 50
  base_lr: float = 0.01
  reward_baseline: str = "fixed"
  fixed_baseline: float = 2.0
  reward_numerator: float = 2.0
  gamma: float = 0.9
  clip_eps: float = 0.2
  update_passes: int = 10
  actor_lr: float = 1e-3
  critic_lr: float = 1e-2
  grad_clip: float = 5.0
  logprob_of: str = "multiplier"
  seed: int = 0

  def __post_init__(self):
    if self.reward_baseline not in REWARD_BASELINES:
      raise ValueError(f"reward_baseline must be one of {REWARD_BASELINES}, "
                       f"got {self.reward_baseline!r}")
    if self.logprob_of not in ("multiplier", "sample"):
      raise ValueError("logprob_of must be 'multiplier' or 'sample', got "
                       f"{self.logprob_of!r}")
    if self.episodes < 1 or self.update_passes < 1:
      raise ValueError("episodes and update_passes must be >= 1")


CriticNet = ScalarMLP  # the critic has the actor mean's form


def rewards(tc: Xu2019TrainConfig, val_loss: jax.Array, mask: jax.Array
            ) -> jax.Array:
  """Per-step rewards of the validation losses ``val_loss`` ``[T]``; only the
  decision steps (``mask``) update the running baselines."""
  v = val_loss
  if tc.reward_baseline == "fixed":
    return tc.fixed_baseline - v
  if tc.reward_baseline == "ratio":
    return tc.reward_numerator / v - tc.fixed_baseline

  def body(c, x):
    total, n, avg = c
    vi, mi = x
    if tc.reward_baseline == "average":
      total, n = total + mi * vi, n + mi
      avg = jnp.where(mi, total / jnp.maximum(n, 1.0), avg)
    else:
      avg = jnp.where(mi, jnp.where(avg == 0, vi, 0.8 * avg + 0.2 * vi), avg)
    return (total, n, avg), avg - vi

  zero = jnp.zeros((), jnp.float32)
  _, r = jax.lax.scan(body, (zero, zero, zero), (v, mask.astype(jnp.float32)))
  return r


def episode(task, cfg: Xu2019Config, tc: Xu2019TrainConfig, actor: Any,
            key: jax.Array) -> dict[str, jax.Array]:
  """One sampled training run; per-step trajectories ``[T, ...]``."""
  batch_shape = (task.batch_size, int(task.dataset.num_classes))
  opt = xu2019_adam(actor, cfg, tc.base_lr, batch_shape, deterministic=False)
  signals = xu2019_signals(cfg)
  s = init_state(task, opt, key)
  ctl = s.opt_state[1]
  ctl = ctl._replace(
      key=jax.random.key_data(jax.random.fold_in(key, 1)),
      feats=ctl.feats._replace(prev_probs=jax.random.uniform(
          jax.random.fold_in(key, 2), batch_shape)))
  s = s._replace(opt_state=(s.opt_state[0], ctl))

  def body(s, _):
    before = s.opt_state[1]
    s, m = train_step(task, opt, s, signals)
    after = s.opt_state[1]
    return s, {"obs": before.feats.obs, "next_obs": after.feats.obs,
               "action": after.action, "multiplier": after.multiplier,
               "mask": after.decided, "val_loss": after.feats.obs[0],
               "train_loss": m["train_loss"], "lr": after.rate}

  _, traj = jax.lax.scan(body, s, None, length=cfg.total_steps)
  traj["reward"] = rewards(tc, traj["val_loss"], traj["mask"])
  return traj


def _log_prob(mean, x, std):
  p = jnp.exp(-0.5 * ((x - mean) / std) ** 2) / (std * jnp.sqrt(2 * jnp.pi))
  return jnp.log(p + LOG_BASE)


def _clip_each(grads, max_norm):
  """``tf.clip_by_norm`` on every tensor."""
  def clip(g):
    n = jnp.sqrt(jnp.sum(g * g))
    return g * jnp.minimum(1.0, max_norm / jnp.maximum(n, 1e-12))
  return jax.tree.map(clip, grads)


def update(cfg: Xu2019Config, tc: Xu2019TrainConfig, params, opt_states,
           traj, optimizers):
  """The script's ``AdaptiveTuner.update`` on one episode."""
  actor_net, critic_net = ActorNet(cfg.hidden), CriticNet(cfg.hidden)
  a_opt, c_opt = optimizers
  w = traj["mask"].astype(jnp.float32)
  w = w / jnp.maximum(w.sum(), 1.0)
  obs, nxt = traj["obs"], traj["next_obs"]
  td = traj["reward"] + tc.gamma * critic_net.apply(params["critic"], nxt)
  adv = td - critic_net.apply(params["critic"], obs)
  x = traj["multiplier"] if tc.logprob_of == "multiplier" else traj["action"]
  old_lp = _log_prob(actor_net.apply(params["actor"], obs), x, cfg.action_std)

  def actor_loss(p):
    lp = _log_prob(actor_net.apply(p, obs), x, cfg.action_std)
    ratio = jnp.exp(lp - old_lp)
    surr = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - tc.clip_eps,
                                              1 + tc.clip_eps) * adv)
    return -jnp.sum(w * surr)

  def critic_loss(p):
    return jnp.sum(w * (td - critic_net.apply(p, obs)) ** 2)

  def one_pass(carry, _):
    (pa, pc), (sa, sc) = carry
    ga = _clip_each(jax.grad(actor_loss)(pa), tc.grad_clip)
    ua, sa = a_opt.update(ga, sa, pa)
    pa = optax.apply_updates(pa, ua)
    uc, sc = c_opt.update(jax.grad(critic_loss)(pc), sc, pc)
    pc = optax.apply_updates(pc, uc)
    return ((pa, pc), (sa, sc)), None

  ((pa, pc), states), _ = jax.lax.scan(
      one_pass, ((params["actor"], params["critic"]), opt_states), None,
      length=tc.update_passes)
  return {"actor": pa, "critic": pc}, states


def train_xu2019(task, cfg: Xu2019Config, tc: Xu2019TrainConfig, *,
                 callback: Callable[[int, dict], None] | None = None):
  """Trains the actor and critic, one episode per update, ``tc.episodes``
  times. Returns ``(params, history)``; ``history`` holds one dict per
  episode (return, last validation loss, final rate, mean multiplier)."""
  key = jax.random.key(tc.seed)
  params = {"actor": init_actor(cfg, jax.random.fold_in(key, 0)),
            "critic": CriticNet(cfg.hidden).init(
                jax.random.fold_in(key, 1), jnp.ones((NUM_FEATURES,)))}
  optimizers = (optax.adam(tc.actor_lr), optax.adam(tc.critic_lr))
  states = (optimizers[0].init(params["actor"]),
            optimizers[1].init(params["critic"]))

  @functools.partial(jax.jit, donate_argnums=())
  def iteration(params, states, k):
    traj = episode(task, cfg, tc, params["actor"], k)
    params, states = update(cfg, tc, params, states, traj, optimizers)
    m = traj["mask"]
    stats = {"episode_return": jnp.sum(jnp.where(m, traj["reward"], 0.0)),
             "final_val_loss": traj["val_loss"][-1],
             "best_val_loss": jnp.min(jnp.where(m, traj["val_loss"], jnp.inf)),
             "final_lr": traj["lr"][-1],
             "mean_multiplier": jnp.sum(jnp.where(m, traj["multiplier"], 0.0))
                                / jnp.maximum(jnp.sum(m), 1)}
    return params, states, stats

  history = []
  for i in range(tc.episodes):
    params, states, stats = iteration(params, states,
                                      jax.random.fold_in(key, 100 + i))
    rec = {"iteration": i + 1, **{k: float(v) for k, v in stats.items()}}
    history.append(rec)
    if callback is not None:
      callback(i + 1, rec)
  return params, history


__all__ = ["CriticNet", "REWARD_BASELINES", "Xu2019TrainConfig", "episode",
           "rewards", "train_xu2019", "update"]
