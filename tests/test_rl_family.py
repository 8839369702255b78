"""The RL environment over the task family and the scale-free features."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta import learned
from lrmeta.controllers import rl_policy as rp
from lrmeta.learned.rl_policy import policy_dict, scaled_policy_config
from lrmeta.rl import (LREnvConfig, PPOConfig, env_cycle, family_envs,
                       family_policy_config, held_out_shapes, rollout,
                       train_ppo, training_shapes)
from lrmeta.tasks.family import Family, Instance
from lrmeta.train import init_state, run_steps

# Cheap family shapes: 7x7 Fashion-MNIST on its 10,000-image subset.
SMALL = Family(sources=(("fashion_mnist", 7),), max_train=(10_000,))
T100 = Instance("fashion_mnist", 7, (16,), batch_size=32, num_steps=100,
                max_train=10_000)
T200 = dataclasses.replace(T100, num_steps=200)
DECISIONS = 5


def _env_cfg(**kw):
  pcfg = rp.PolicyConfig(features="scale_free", hidden=(8,), **kw)
  return LREnvConfig(policy=pcfg, val_batch_size=32, final_val_examples=200)


# -- scale-free features --------------------------------------------------------


def _features_run(cfg, scale, steps=12, window=3, seed=0):
  """Feeds synthetic signals (loss, validation loss and gradients all times
  ``scale``) through the feature tracker, deciding every ``window`` steps;
  returns the observations at the decisions and the final state."""
  rng = np.random.default_rng(seed)
  tx = rp.rl_features_scale(cfg)
  p = {"Dense_0": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}}
  s = tx.init(p)
  obs = []
  for t in range(steps):
    if t % window == 0:
      s = rp.decide(cfg, s, p, jnp.log(1.25))
    loss = 2.0 * np.exp(-0.1 * t) * (1 + 0.05 * rng.standard_normal())
    val = loss * 1.3 if (t + 1) % window == 0 else np.nan
    g = jax.tree.map(lambda x: jnp.asarray(
        scale * (1 + t) ** -0.5 * rng.standard_normal(x.shape), jnp.float32),
        p)
    _, s = tx.update(g, s, p, value=scale * loss, val_value=scale * val)
    if (t + 1) % window == 0:
      obs.append(np.asarray(rp.observe(cfg, s, p)))
  return np.stack(obs), s


def test_scale_free_features_ignore_the_loss_scale():
  """Multiplying the loss (and so the gradients) by a constant leaves every
  entry unchanged, though the tracked statistics scale with it."""
  cfg = rp.PolicyConfig(features="scale_free", total_steps=12)
  a, sa = _features_run(cfg, 1.0)
  b, sb = _features_run(cfg, 37.0)
  assert a.shape == (4, cfg.obs_dim) == (4, 6)
  np.testing.assert_allclose(float(sb.feats.train_ema),
                             37.0 * float(sa.feats.train_ema), rtol=1e-5)
  np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
  # Not trivially invariant: the entries move over the run.
  for i in (0, 1, 2, 3, 4, 5):
    assert np.ptp(a[:, i]) > 1e-3 or abs(a[0, i]) > 1e-3, (i, a[:, i])
  # Budget fraction, the generalisation gap (val = 1.3 train loss) and the
  # log multiplier read what was fed in.
  np.testing.assert_allclose(a[:, 0], [0.25, 0.5, 0.75, 1.0], rtol=1e-6)
  np.testing.assert_allclose(a[:, 4], np.log(1.25) * np.arange(1, 5),
                             rtol=1e-5)
  f = sa.feats
  np.testing.assert_allclose(a[-1, 3], np.log(f.val_last / f.train_ema),
                             rtol=1e-5)
  np.testing.assert_allclose(a[-1, 5], np.log(f.gn_ema / f.gnorm0),
                             rtol=1e-5)
  # The first window's slope is measured from the first loss.
  assert a[0, 2] < 0


def test_scale_free_features_clip_to_their_ranges():
  cfg = rp.PolicyConfig(features="scale_free", total_steps=4,
                        min_log_scale=-2.0, max_log_scale=1.0)
  lo, hi = (np.asarray(x) for x in rp.scale_free_bounds(cfg))
  assert lo[4] == -2.0 and hi[4] == 1.0
  assert rp.feature_names("scale_free") == rp.SCALE_FREE_NAMES
  assert len(rp.feature_names("xu2019")) == rp.FEATURE_SETS["xu2019"]
  tx = rp.rl_features_scale(cfg)
  p = {"w": jnp.ones((2, 3))}
  s = tx.init(p)
  s = rp.decide(cfg, s, p, 5.0)  # beyond max_log_scale
  seen_hi = np.zeros(6, bool)
  for v in (1.0, 1e6, jnp.inf, jnp.nan, 1e-9):
    _, s = tx.update({"w": jnp.full((2, 3), v)}, s, p, value=v, val_value=v)
    o = np.asarray(rp.observe(cfg, s, p))
    assert np.isfinite(o).all() and (o >= lo).all() and (o <= hi).all(), o
    seen_hi |= o == hi
  # Exploding loss and gradients hit the upper bounds.
  assert seen_hi[[1, 4, 5]].all(), seen_hi


# -- family environments ---------------------------------------------------------


def test_training_shapes_are_deterministic_and_never_held_out():
  key = jax.random.key(3)
  shapes = training_shapes(key, 12)
  assert shapes == training_shapes(key, 12)
  assert shapes != training_shapes(jax.random.key(4), 12)
  assert len(set(shapes)) == 12 and all(s.seed == 0 for s in shapes)
  assert not set(shapes) & held_out_shapes()
  # They come from the family's own draws, in order (draw i uses
  # fold_in(key, i)).
  first = Family().sample(jax.random.fold_in(key, 0), 12)[0].shape
  assert shapes[0] == first or first in held_out_shapes()
  # A family whose one sampled-distribution held-out shape is reachable by
  # sampling: it is never returned, so only two shapes remain.
  tiny = Family(sources=(("fashion_mnist", 7),), hidden=((16,), (32,)),
                batch_sizes=(64,), num_steps=(100, 200), label_noise=(0.0,),
                max_train=(None,), held_out_combos=(((16,), 200),))
  held = held_out_shapes(tiny)
  assert len(held) == 2  # the held-out combination and the middle one
  reachable = {i.shape for i in tiny.sample(jax.random.key(0), 200)}
  assert len(reachable & held) == 1
  for k in range(10):
    got = training_shapes(jax.random.key(k), 2, tiny)
    assert set(got) == reachable - held, k
  with pytest.raises(ValueError, match=r"\[1, 2\]"):
    training_shapes(jax.random.key(0), 3, tiny)


def test_family_envs_share_the_horizon_and_refuse_held_out_shapes():
  cfg = _env_cfg()
  shapes = training_shapes(jax.random.key(0), 3, SMALL)
  envs = family_envs(shapes, cfg, DECISIONS, family=SMALL)
  again = family_envs(shapes + shapes[:1], cfg, DECISIONS, family=SMALL)
  assert [(e.task.name, e.policy_cfg) for e in envs] == [
      (e.task.name, e.policy_cfg) for e in again]
  assert [e.task.name for e in envs] == [s.name.rsplit("/", 1)[0]
                                         for s in shapes]
  assert all(a is b for a, b in zip(env_cycle(envs), envs))
  for s, e in zip(shapes, envs):
    assert e.horizon == DECISIONS
    assert e.policy_cfg.steps_per_action * DECISIONS == s.num_steps
    assert e.policy_cfg == family_policy_config(cfg.policy, s.num_steps,
                                                DECISIONS)
    assert e.policy_cfg == scaled_policy_config(envs[0].policy_cfg,
                                                s.num_steps)
  held = sorted(held_out_shapes(SMALL), key=lambda s: s.name)[0]
  with pytest.raises(ValueError, match="held-out"):
    family_envs([shapes[0], held], cfg, DECISIONS, family=SMALL)
  with pytest.raises(ValueError, match="must divide"):
    family_envs([T100], cfg, 3)
  # The trainers still refuse environments whose policies read differently.
  other = family_envs([T100], _env_cfg(ema=0.5), DECISIONS)
  with pytest.raises(ValueError, match="must share"):
    env_cycle(envs + other)


def _decisive_actor(cfg):
  """An actor whose choice moves with the budget fraction (entry 0): factor
  0.8 early, 1.25 late, so the schedule is not constant."""
  actor = rp.init_actor(cfg, jax.random.key(0))
  p = jax.tree.map(jnp.zeros_like, actor["params"])
  p["Dense_0"]["kernel"] = p["Dense_0"]["kernel"].at[0, 0].set(10.0)
  p["Dense_0"]["bias"] = p["Dense_0"]["bias"].at[0].set(-5.0)
  p["Dense_1"]["kernel"] = (p["Dense_1"]["kernel"].at[0, 1].set(-10.0)
                            .at[0, 3].set(10.0))
  return {"params": p}


@pytest.mark.parametrize("base_schedule", ["constant", "cosine"])
def test_frozen_policy_reproduces_family_env_rates(base_schedule):
  """A policy saved with the 100-step environment's config, deployed by the
  learned store on the 200-step shape, applies that environment's rates (on
  a constant base rate, or correcting a cosine decay); the observations stay
  in their ranges on the real runs."""
  cfg = _env_cfg(base_schedule=base_schedule)
  e100, e200 = family_envs([T100, T200], cfg, DECISIONS)
  assert e200.policy_cfg == scaled_policy_config(e100.policy_cfg, 200)
  assert e200.policy_cfg.steps_per_action == 40
  actor = _decisive_actor(e100.policy_cfg)
  # Each environment's run is the instance of that shape whose seed is
  # the reset key.
  runs = [dataclasses.replace(T200, seed=s) for s in (3, 4)]
  keys = jnp.stack([inst.key() for inst in runs])
  _, traj = jax.jit(functools.partial(rollout, e200, deterministic=True))(
      actor, keys)
  obs = np.asarray(traj["obs"])  # [decisions, envs, 6]
  lo, hi = (np.asarray(x) for x in rp.scale_free_bounds(e200.policy_cfg))
  assert np.isfinite(obs).all() and (obs >= lo).all() and (obs <= hi).all()
  np.testing.assert_allclose(obs[:, 0, 0], np.arange(DECISIONS) / DECISIONS,
                             rtol=1e-6)
  assert (obs[1:, :, 1] < 0).all()  # the training loss fell
  env_lr = np.transpose(np.asarray(traj["lr"]), (1, 0, 2)).reshape(2, -1)
  assert len(np.unique(np.round(env_lr[0], 6))) > 1, env_lr[0]
  # The log multiplier seen at a decision is that of the window before
  # (the policy's own: the base schedule's factor is divided out).
  base = np.asarray(jax.vmap(lambda c: rp.base_factor(e200.policy_cfg, c))(
      jnp.arange(T200.num_steps)))
  assert obs[0, 0, 4] == 0.0
  np.testing.assert_allclose(
      obs[1:, 0, 4], np.log(env_lr[0, 39:-1:40] / (cfg.base_lr
                                                   * base[39:-1:40])),
      atol=1e-5)

  run = _deployed(actor, e100.policy_cfg, cfg, e200.task, T200.num_steps)
  for i, inst in enumerate(runs):
    np.testing.assert_allclose(run(inst.key()), env_lr[i], rtol=1e-5)


def _deployed(actor, pcfg, cfg, task, steps):
  """The policy saved with ``pcfg`` deployed by the learned store on
  ``steps`` of ``task``: ``key -> applied rates``."""
  config = {"controller": "rl_policy", "policy": policy_dict(pcfg),
            "base_lr": cfg.base_lr, "momentum": cfg.momentum,
            "val_batch_size": cfg.val_batch_size}
  kind = learned.get("rl_policy")
  opt = kind.optimizer(actor, config, steps)
  run = jax.jit(lambda s: run_steps(task, opt, s, steps,
                                    signals=kind.signals(config, steps)))
  return lambda key: np.asarray(run(init_state(task, opt, key))[1]["lr"])


def test_base_factor_is_one_or_the_cosine_decay():
  steps = jnp.arange(0, 260, 20)
  flat = rp.PolicyConfig(total_steps=200)
  cos = rp.PolicyConfig(total_steps=200, base_schedule="cosine")
  np.testing.assert_array_equal(
      np.asarray(jax.vmap(lambda c: rp.base_factor(flat, c))(steps)), 1.0)
  got = np.asarray(jax.vmap(lambda c: rp.base_factor(cos, c))(steps))
  np.testing.assert_allclose(got, optax.cosine_decay_schedule(1.0, 200)(steps),
                             atol=1e-6)
  assert got[0] == 1.0 and got[5] == pytest.approx(0.5, abs=1e-6)
  assert (got[10:] < 1e-6).all()  # held at 0 from the budget on
  with pytest.raises(ValueError, match="base_schedule"):
    rp.PolicyConfig(base_schedule="linear")


def test_keep_rate_policy_over_cosine_base_is_cosine_annealing():
  """An actor that keeps the rate at every decision, on the cosine base,
  trains with exactly optax's cosine decay from the base rate; on the
  constant base with the same actor the rate stays at the base rate."""
  for base_schedule in ("cosine", "constant"):
    env, = family_envs([T100], _env_cfg(action="continuous",
                                        base_schedule=base_schedule),
                       DECISIONS)
    actor = rp.init_actor(env.policy_cfg, jax.random.key(0))
    actor = jax.tree.map(jnp.zeros_like, actor)  # mean log-factor 0
    keys = jnp.stack([dataclasses.replace(T100, seed=1).key()])
    _, traj = jax.jit(functools.partial(rollout, env, deterministic=True))(
        actor, keys)
    lr = np.transpose(np.asarray(traj["lr"]), (1, 0, 2)).reshape(-1)
    want = (optax.cosine_decay_schedule(env.cfg.base_lr, T100.num_steps)(
        np.arange(T100.num_steps)) if base_schedule == "cosine"
            else np.full(T100.num_steps, env.cfg.base_lr))
    np.testing.assert_allclose(lr, want, rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_ppo_cycles_family_shapes_of_different_budgets():
  envs = family_envs([T100, T200], _env_cfg(), DECISIONS)
  _, hist = train_ppo(envs, PPOConfig(num_envs=2, iterations=2, epochs=1,
                                      minibatches=2))
  assert [h["env_index"] for h in hist] == [0, 1]
  assert all(np.isfinite(v) for h in hist for v in h.values())


def test_densify_env_and_frozen_policy_decide_at_the_same_points():
  """With ``decision_spacing="densify"`` the environment's windows follow
  :func:`decision_bounds` (200 steps in 5 decisions: 56, 56, 40, 24, 24
  steps), and the policy saved with the 100-step config, deployed on 200
  steps, applies the environment's rates step for step."""
  cfg = _env_cfg(decision_spacing="densify")
  e100, e200 = family_envs([T100, T200], cfg, DECISIONS)
  np.testing.assert_array_equal(rp.decision_bounds(e200.policy_cfg),
                                [0, 56, 112, 152, 176, 200])
  actor = _decisive_actor(e100.policy_cfg)
  inst = dataclasses.replace(T200, seed=3)
  _, traj = jax.jit(functools.partial(rollout, e200, deterministic=True))(
      actor, inst.key()[None])
  lr = np.asarray(traj["lr"])[:, 0]  # [decisions, longest window]
  assert lr.shape == (DECISIONS, 56)
  lengths = np.isfinite(lr).sum(1)
  np.testing.assert_array_equal(lengths, [56, 56, 40, 24, 24])
  assert np.isfinite(lr[:, -1]).all()  # right-aligned: last step kept
  env_lr = lr[np.isfinite(lr)]
  # One rate per window, a new one at every decision.
  per_window = np.split(env_lr, np.cumsum(lengths)[:-1])
  assert all(np.ptp(w) == 0 for w in per_window)
  assert len(np.unique(np.round([w[0] for w in per_window], 6))) > 1

  run = _deployed(actor, e100.policy_cfg, cfg, e200.task, T200.num_steps)
  np.testing.assert_allclose(run(inst.key()), env_lr, rtol=1e-5)
