"""RL learning-rate policy: environment, PPO, actor-critic, frozen policy."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from controller_contract import check_controller_contract
from lrmeta.controllers import rl_policy as rp
from lrmeta.rl import (ACConfig, LREnv, LREnvConfig, PPOConfig,
                       QuadraticLREnv, rl_signals, rollout, train_actor_critic,
                       train_ppo)
from lrmeta.tasks import make_task
from lrmeta.train import init_state, run_steps
from script_module import load_script


def _cfg(**kw):
  base = dict(steps_per_action=3, total_steps=9, features="xu2019",
              probe_size=16, hidden=(8,))
  base.update(kw)
  return rp.PolicyConfig(**base)


# -- the frozen policy --------------------------------------------------------


@pytest.mark.parametrize("action,deterministic", [("discrete", True),
                                                  ("continuous", True),
                                                  ("discrete", False)])
def test_rl_lr_policy_contract(action, deterministic):
  cfg = _cfg(action=action, steps_per_action=2)
  actor = rp.init_actor(cfg, jax.random.key(0))
  check_controller_contract(
      lambda: optax.chain(optax.sgd(0.1),
                          rp.rl_lr_policy(actor, cfg,
                                          deterministic=deterministic)),
      inject=lambda: optax.chain(
          optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
          rp.rl_lr_policy(actor, cfg)))


def test_overhead_bench_row():
  """The bench's RL row: the controlled optimizer is the base plus a frozen
  policy, and both step the same parameters."""
  (name, base, ctl), = load_script("bench_controller_overhead").rl_policy_rows()
  assert name == "rl_policy_sgd"
  tx = ctl()
  assert isinstance(tx, optax.GradientTransformationExtraArgs)
  assert isinstance(base(), optax.GradientTransformation)
  p = {"Dense_0": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
  u, s = tx.update(p, tx.init(p), p, value=jnp.asarray(1.0))
  assert jax.tree.map(jnp.shape, u) == jax.tree.map(jnp.shape, p)
  assert np.isfinite(float(s[1].learning_rate))


def test_policy_multiplies_lr_every_n_steps():
  """An actor that always picks factor 2 doubles the rate every N steps."""
  cfg = _cfg(factors=(0.5, 2.0), features="basic")
  actor = rp.init_actor(cfg, jax.random.key(0))
  # Bias the output layer so that action 1 (factor 2) always wins.
  last = sorted(actor["params"])[-1]
  actor["params"][last]["bias"] = jnp.array([0.0, 100.0])
  tx = rp.rl_lr_policy(actor, cfg)
  p = {"w": jnp.ones((3, 2))}
  s = tx.init(p)
  scales = []
  for _ in range(7):
    _, s = tx.update({"w": jnp.ones((3, 2))}, s, p, value=1.0)
    scales.append(float(s.learning_rate))
  np.testing.assert_allclose(scales, [2, 2, 2, 4, 4, 4, 8], rtol=1e-6)


# -- the environment ----------------------------------------------------------


def _decisive_actor(cfg):
  """A hand-set actor whose choice moves with the budget fraction and the
  training loss, so that a rollout's schedule is not constant."""
  actor = rp.init_actor(cfg, jax.random.key(0))
  p = jax.tree.map(jnp.zeros_like, actor["params"])
  k0 = p["Dense_0"]["kernel"].at[7, 0].set(10.0).at[0, 0].set(2.0)
  p["Dense_0"]["kernel"] = k0
  p["Dense_0"]["bias"] = p["Dense_0"]["bias"].at[0].set(-5.0)
  if cfg.action == "discrete":
    # factors (0.5, 0.8, 1, 1.25, 2): early 0.8, late 1.25.
    p["Dense_1"]["kernel"] = (p["Dense_1"]["kernel"].at[0, 1].set(-10.0)
                              .at[0, 3].set(10.0))
  else:
    p["Dense_1"]["kernel"] = p["Dense_1"]["kernel"].at[0, 0].set(0.5)
    p["log_std"] = actor["params"]["log_std"]
  return {"params": p}


@pytest.fixture(scope="module")
def mlp_task(fmnist_small):
  """A tiny MLP on the small Fashion-MNIST (compiles fast)."""
  return make_task("fashion_mnist", "mlp", batch_size=32, data=fmnist_small,
                   model_kwargs={"hidden": (16,)})


def _check_reproduces(task, env, actor):
  """Deterministic rollout in the env vs. the frozen transformation in a plain
  training run from the same keys with the same signals: same LRs."""
  pcfg = env.policy_cfg
  keys = jax.random.split(jax.random.key(7), 2)
  _, traj = jax.jit(functools.partial(rollout, env, deterministic=True))(
      actor, keys)
  env_lr = np.asarray(traj["lr"])  # [decisions, envs, N]
  env_lr = np.transpose(env_lr, (1, 0, 2)).reshape(2, -1)
  assert len(np.unique(np.round(env_lr[0], 6))) > 1, env_lr[0]
  opt = optax.chain(
      optax.inject_hyperparams(optax.sgd)(learning_rate=env.cfg.base_lr,
                                          momentum=env.cfg.momentum),
      rp.rl_lr_policy(actor, pcfg, deterministic=True))
  run = jax.jit(lambda s: run_steps(task, opt, s, pcfg.total_steps,
                                    signals=rl_signals(pcfg, 32)))
  for i in range(2):
    _, m = run(init_state(task, opt, keys[i]))
    np.testing.assert_allclose(np.asarray(m["lr"]), env_lr[i], rtol=1e-5)


@pytest.mark.slow
def test_ppo_policy_reproduces_env_learning_rates(mlp_task):
  """PPO runs on real (vmapped) training runs, and the discrete policy,
  deployed as a transformation, applies the env's learning rates."""
  env = LREnv(mlp_task, LREnvConfig(policy=_cfg(), val_batch_size=32,
                                    final_val_examples=200))
  st, hist = train_ppo(env, PPOConfig(num_envs=2, iterations=1,
                                      minibatches=2, epochs=1))
  assert all(np.isfinite(v) for v in hist[0].values())
  actor = _decisive_actor(env.policy_cfg)
  # The trained actor is a valid rl_lr_policy; check with a decisive one so
  # that the schedule visibly changes.
  assert jax.tree.structure(actor) == jax.tree.structure(st.params["actor"])
  _check_reproduces(mlp_task, env, actor)


@pytest.mark.slow
def test_actor_critic_policy_reproduces_env_learning_rates(mlp_task):
  """Xu, Qin et al.'s actor-critic on real runs (continuous log-factor,
  training-loss reward); its mean action reproduced by the transformation."""
  env = LREnv(mlp_task, LREnvConfig(policy=_cfg(action="continuous"),
                                    val_batch_size=32, reward="train_loss",
                                    final_val_examples=200))
  st, hist = train_actor_critic(env, ACConfig(num_envs=2, episodes=1))
  assert all(np.isfinite(v) for v in hist[0].values())
  actor = jax.tree.map(lambda a, b: a + b, st.params["actor"],
                       _decisive_actor(env.policy_cfg))
  _check_reproduces(mlp_task, env, actor)


@pytest.mark.slow
def test_observations_finite_on_diverging_run(mlp_task):
  pcfg = _cfg(factors=(4.0,))  # every decision multiplies the LR by 4
  env = LREnv(mlp_task, LREnvConfig(policy=pcfg, base_lr=50.0,
                                       val_batch_size=32,
                                       final_val_examples=200))
  actor = rp.init_actor(pcfg, jax.random.key(0))
  _, traj = jax.jit(functools.partial(rollout, env, deterministic=True))(
      actor, jax.random.split(jax.random.key(0), 2))
  losses = np.asarray(traj["train_loss"])
  assert not np.isfinite(losses).all() or losses.max() > 10.0  # it diverged
  assert np.isfinite(np.asarray(traj["obs"])).all()
  assert np.isfinite(np.asarray(traj["reward"])).all()
  assert np.isfinite(np.asarray(traj["final_reward"])).all()
  # The frozen policy's own features stay finite too.
  tx = rp.rl_lr_policy(actor, pcfg)
  p = {"w": jnp.ones((2, 3))}
  s = tx.init(p)
  for v in (1.0, jnp.inf, jnp.nan):
    _, s = tx.update({"w": jnp.full((2, 3), v)}, s, p, value=v, val_value=v,
                     val_probs=jnp.full((16, 3), v))
    assert np.isfinite(np.asarray(rp.observe(pcfg, s, p))).all()


# -- learning -----------------------------------------------------------------


def _assert_greedy_policy_optimal(env, actor_params):
  """Drives the deterministic policy from each start j0 in [-3, 3]: it must
  walk ``log2(lr h)`` to 0 by one factor of 2 per step and keep it there."""
  net = rp.make_policy_net(env.policy_cfg)
  for j0 in range(-3, 4):
    s = type(env.reset(jax.random.key(0))[0])(jnp.float32(j0), jnp.float32(0))
    obs = env._obs(s)  # pylint: disable=protected-access
    path = []
    for _ in range(env.horizon):
      a = rp.policy_action(env.policy_cfg, net.apply(actor_params, obs),
                           None, True)
      s, obs, _, _ = env.step(s, a)
      path.append(float(s.log2_lr))
    want = [np.sign(j0) * max(abs(j0) - t - 1, 0) for t in range(env.horizon)]
    assert path == want, (j0, path)


def test_ppo_learns_optimal_lr_on_quadratic():
  """On the toy quadratic the one best rate is 1/h; from every start the
  greedy policy must walk the rate there by factors of 2 and keep it."""
  env = QuadraticLREnv()
  state, hist = train_ppo(env, PPOConfig(num_envs=32, iterations=100,
                                         learning_rate=3e-3, gamma=0.9,
                                         seed=0))
  assert hist[-1]["episode_return"] > hist[0]["episode_return"] + 10
  _assert_greedy_policy_optimal(env, state.params["actor"])


@pytest.mark.slow
def test_ppo_cycles_a_task_family():
  """Iterations alternate between the environments; the policy learns from
  both: one env only ever starts at the best rate (nothing to learn there),
  the other from every start, and the greedy policy is optimal everywhere."""
  family = [QuadraticLREnv(start_range=0), QuadraticLREnv(start_range=3)]
  state, hist = train_ppo(family, PPOConfig(num_envs=32, iterations=160,
                                            learning_rate=3e-3, gamma=0.9,
                                            seed=0))
  assert [h["env_index"] for h in hist[:4]] == [0, 1, 0, 1]
  _assert_greedy_policy_optimal(family[1], state.params["actor"])
  with pytest.raises(ValueError, match="must share"):
    train_ppo([QuadraticLREnv(), QuadraticLREnv(horizon_steps=6)],
              PPOConfig(num_envs=2, iterations=1))


def test_ppo_checkpoint_resume(tmp_path):
  env = QuadraticLREnv()
  cfg = PPOConfig(num_envs=8, iterations=4, checkpoint_dir=str(tmp_path),
                  checkpoint_every=2)
  full, _ = train_ppo(env, cfg)
  # Interrupted after 2 iterations, then resumed to 4: identical result.
  d2 = tmp_path / "resumed"
  train_ppo(env, PPOConfig(num_envs=8, iterations=2, checkpoint_dir=str(d2),
                           checkpoint_every=2))
  resumed, hist = train_ppo(env, PPOConfig(num_envs=8, iterations=4,
                                           checkpoint_dir=str(d2),
                                           checkpoint_every=2))
  assert len(hist) == 4
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
               full.params, resumed.params)
