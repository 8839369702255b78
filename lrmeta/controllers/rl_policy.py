"""A frozen RL learning-rate policy of lrmeta's environment
(:mod:`lrmeta.rl.env`, ``env.mode = "lrmeta"``) as an Optax transformation.

The design (factors every N steps on SGD, normalised features) is lrmeta's;
the controller as Xu, Dai, Kemp, Metz (2019) built it is
:mod:`lrmeta.controllers.rl_xu2019`.

The policy network (trained by :mod:`lrmeta.rl`) reads normalised features of
the training dynamics every ``steps_per_action`` updates (or at the points
of ``decision_spacing="densify"``, closer together towards the end of the
budget) and multiplies the learning rate by a factor it chooses. This module and
:mod:`lrmeta.controllers.rl_features` own everything the policy and the RL
environment must agree on, so that a policy deployed here sees exactly the
observations it was trained on (the names of both are importable from here):

* :class:`FeatureState` and :func:`observe`: the per-step feature tracker and
  the observation vector built from it (:mod:`lrmeta.controllers.rl_features`
  describes every entry of every feature set);
* :class:`PolicyNet` and :func:`policy_action`: the actor network and how its
  output becomes a log-factor on the learning rate;
* :func:`rl_features_scale`: the transformation that tracks features and
  scales the base optimizer's updates by ``exp(log_scale)``; the environment
  sets ``log_scale`` from outside, :func:`rl_lr_policy` lets the actor set it.

``base_schedule="cosine"`` makes the policy residual (as in residual policy
learning, Silver et al. 2018): the updates are scaled by ``exp(log_scale)``
times the cosine decay ``(1 + cos(pi t / T))/2`` over the run's budget, so
the policy's factors correct a cosine schedule instead of building one from a
constant rate; a policy that always keeps the rate is cosine annealing.
``base_schedule="wsd"`` does the same over the warm-up-stable-decay
baseline (hold the rate, then decay linearly to 0 over the last fifth).

Signals arrive as extra args: ``value=`` (minibatch loss, every step),
``val_value=`` (a validation loss, NaN when not measured this step) and, for
``"xu2019"``, ``val_probs=`` (``[probe, classes]`` softmax outputs on the fixed
probe batch, NaN when not measured). :func:`lrmeta.rl.env.rl_signals` produces
them; missing signals leave the corresponding features at 0.

References:
  Xu, Dai, Kemp, Metz, "Learning an Adaptive Learning Rate Schedule",
  arXiv:1909.09712, 2019. Xu, Qin, Wang, Liu, "Reinforcement Learning for
  Learning Rate Control", arXiv:1705.11159, 2017.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers import checks
from lrmeta.schedules.baselines import unit_schedule
from lrmeta.controllers.rl_features import (BASE_SCHEDULES,
                                            DECISION_SPACINGS, FEATURE_NAMES,
                                            FEATURE_SETS, SCALE_FREE_NAMES,
                                            SCALE_FREE_RANGES, FeatureState,
                                            PolicyConfig, RLPolicyState, _f32,
                                            decide, decision_bounds,
                                            feature_names, init_features,
                                            is_decision_step, is_window_end,
                                            observe, output_layer,
                                            scale_free_bounds, track,
                                            window_lengths)


# -- the actor --------------------------------------------------------------


class PolicyNet(nn.Module):
  """The actor: an MLP from observations to action logits (discrete) or to
  the mean of a Gaussian log-factor plus a state-independent ``log_std``."""

  num_outputs: int
  hidden: Sequence[int] = (32, 32)
  continuous: bool = False

  @nn.compact
  def __call__(self, obs: jax.Array):
    x = obs
    for h in self.hidden:
      x = nn.tanh(nn.Dense(h)(x))
    out = nn.Dense(self.num_outputs,
                   kernel_init=nn.initializers.normal(0.01))(x)
    if self.continuous:
      log_std = self.param("log_std", nn.initializers.constant(-1.0),
                           (self.num_outputs,))
      return out, jnp.broadcast_to(log_std, out.shape)
    return out


def make_policy_net(cfg: PolicyConfig) -> PolicyNet:
  if cfg.action == "discrete":
    return PolicyNet(len(cfg.factors), tuple(cfg.hidden), continuous=False)
  return PolicyNet(1, tuple(cfg.hidden), continuous=True)


def keep_index(factors: Sequence[float]) -> int:
  """Index of the discrete factor closest to 1 (the "keep the rate" action)."""
  return int(min(range(len(factors)), key=lambda i: abs(math.log(factors[i]))))


def action_log_factor(cfg: PolicyConfig, action: jax.Array) -> jax.Array:
  """Maps an action (index or raw Gaussian sample) to a log LR factor."""
  if cfg.action == "discrete":
    logs = jnp.log(jnp.asarray(cfg.factors, jnp.float32))
    return logs[action]
  return jnp.clip(jnp.reshape(_f32(action), ()), -cfg.max_log_factor,
                  cfg.max_log_factor)


def policy_action(cfg: PolicyConfig, net_out: Any, key: jax.Array | None,
                  deterministic: bool) -> jax.Array:
  """Greedy/mean action when ``deterministic``, otherwise a sample."""
  if cfg.action == "discrete":
    if deterministic:
      return jnp.argmax(net_out, -1)
    return jax.random.categorical(key, net_out, -1)
  mean, log_std = net_out
  mean = mean[..., 0]
  if deterministic:
    return mean
  return mean + jnp.exp(log_std[..., 0]) * jax.random.normal(key, mean.shape)


# -- transformations ---------------------------------------------------------


def base_factor(cfg: PolicyConfig, count: jax.Array) -> jax.Array:
  """The base schedule's multiplier at update ``count`` (0-based): 1 for
  ``"constant"``, ``(1 + cos(pi * count / total_steps))/2`` for ``"cosine"``
  (held at 0 past the budget), the ``wsd`` baseline's unit schedule
  (:func:`lrmeta.schedules.baselines.unit_schedule`) for ``"wsd"``."""
  if cfg.base_schedule == "constant":
    return jnp.ones((), jnp.float32)
  if cfg.base_schedule == "wsd":
    return jnp.asarray(unit_schedule("wsd", cfg.total_steps)(count),
                       jnp.float32)
  frac = jnp.minimum(_f32(count) / cfg.total_steps, 1.0)
  return 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def _transform(cfg: PolicyConfig, actor_params, deterministic: bool,
               seed: int) -> optax.GradientTransformationExtraArgs:
  net = make_policy_net(cfg) if actor_params is not None else None
  decision_bounds(cfg)  # refuses a spacing that does not fit the budget

  def init_fn(params):
    return RLPolicyState(
        count=jnp.zeros((), jnp.int32), learning_rate=jnp.ones((), jnp.float32),
        log_scale=jnp.zeros((), jnp.float32), feats=init_features(cfg, params),
        key=jax.random.key_data(jax.random.key(seed)))

  def update_fn(updates, state, params=None, *, value=None, val_value=None,
                val_probs=None, **extra):
    del extra
    if net is not None:
      if params is None:
        raise ValueError("rl_lr_policy needs params (output-layer features)")
      key = jax.random.wrap_key_data(state.key)
      key, sub = jax.random.split(key)

      def act(s):
        obs = observe(cfg, s, params)
        a = policy_action(cfg, net.apply(actor_params, obs), sub,
                          deterministic)
        return decide(cfg, s, params, action_log_factor(cfg, a))

      state = jax.lax.cond(is_decision_step(cfg, state.count), act,
                           lambda s: s, state)
      state = state._replace(key=jax.random.key_data(key))
    feats = track(cfg, state.feats, updates, value=value, val_value=val_value,
                  val_probs=val_probs)
    scale = jnp.exp(state.log_scale) * base_factor(cfg, state.count)
    updates = jax.tree.map(lambda u: (u * scale).astype(u.dtype), updates)
    return updates, state._replace(count=state.count + 1, learning_rate=scale,
                                   feats=feats)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def rl_features_scale(cfg: PolicyConfig) -> optax.GradientTransformationExtraArgs:
  """Tracks the policy's features and scales updates by ``exp(log_scale)``
  (times the base schedule's factor, :func:`base_factor`).

  Nothing inside changes ``log_scale``: the RL environment sets it between
  chunks of ``steps_per_action`` steps with :func:`decide`.
  """
  return _transform(cfg, None, True, 0)


def rl_lr_policy(params: Any, cfg: PolicyConfig | None = None, *,
                 deterministic: bool = True, seed: int = 0,
                 **cfg_kwargs) -> optax.GradientTransformationExtraArgs:
  """A frozen RL policy that multiplies the learning rate every N steps.

  Chain it after a base optimizer whose learning rate is the policy's base
  rate, e.g. ``optax.chain(optax.sgd(0.05, momentum=0.9), rl_lr_policy(p,
  cfg))``; it scales the base updates by ``exp(log_scale)`` (times
  :func:`base_factor`, 1 unless ``cfg.base_schedule="cosine"``), where at every
  ``cfg.steps_per_action``-th update

  .. math::
    \\log s \\leftarrow \\mathrm{clip}(\\log s + \\log f(a)), \\quad
    a = \\pi_\\theta(o_t)

  with ``o_t`` the observation of :func:`observe` and ``f(a)`` the chosen
  factor. Give it the signals of :func:`lrmeta.rl.env.rl_signals` to see the
  same features it was trained on.

  Args:
    params: the actor's Flax parameters (``{"params": ...}``) as trained by
      :mod:`lrmeta.rl`.
    cfg: the :class:`PolicyConfig` used in training (or pass its fields as
      keyword arguments).
    deterministic: greedy (discrete) / mean (continuous) actions; otherwise
      actions are sampled from the policy with a key seeded by ``seed``.
    seed: PRNG seed of the stochastic mode.

  Returns:
    A ``GradientTransformationExtraArgs`` whose state's ``learning_rate`` is
    the multiplier it applied (times any injected base rate, this is what
    :func:`lrmeta.train.applied_learning_rate` reports).

  References:
    Xu, Dai, Kemp, Metz, arXiv:1909.09712, 2019; Xu, Qin, Wang, Liu,
    arXiv:1705.11159, 2017.
  """
  cfg = cfg if cfg is not None else PolicyConfig(**cfg_kwargs)
  return _transform(cfg, params, deterministic, seed)


def rl_lr_sgd(params: Any, learning_rate: float, cfg: PolicyConfig | None = None,
              *, momentum: float = 0.9, deterministic: bool = True,
              seed: int = 0) -> optax.GradientTransformationExtraArgs:
  """SGD (momentum) at base ``learning_rate`` under a frozen RL policy.

  Args:
    params: the actor's parameters (see :func:`rl_lr_policy`).
    learning_rate: the base rate, ``> 0``, that the policy multiplies.
    cfg: the policy's :class:`PolicyConfig`.
    momentum: heavy-ball momentum in ``[0, 1)``.
    deterministic, seed: see :func:`rl_lr_policy`.

  Returns:
    ``optax.chain(inject_hyperparams(sgd), rl_lr_policy(...))``.
  """
  checks.positive("rl_lr_sgd", "learning_rate", learning_rate)
  checks.unit_interval("rl_lr_sgd", "momentum", momentum)
  base = optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate,
                                             momentum=momentum)
  return optax.chain(base, rl_lr_policy(params, cfg, deterministic=deterministic,
                                        seed=seed))


def init_actor(cfg: PolicyConfig, key: jax.Array) -> Any:
  """Random actor parameters (for tests, benchmarks and training init)."""
  return make_policy_net(cfg).init(key, jnp.zeros((cfg.obs_dim,), jnp.float32))


__all__ = ["BASE_SCHEDULES", "DECISION_SPACINGS", "FEATURE_NAMES",
           "FEATURE_SETS", "SCALE_FREE_NAMES", "SCALE_FREE_RANGES",
           "FeatureState", "PolicyConfig", "PolicyNet", "RLPolicyState",
           "action_log_factor", "base_factor", "decide", "decision_bounds",
           "feature_names", "init_actor", "init_features",
           "is_decision_step", "is_window_end", "keep_index",
           "make_policy_net", "observe", "window_lengths",
           "output_layer", "policy_action", "rl_features_scale",
           "rl_lr_policy", "rl_lr_sgd", "scale_free_bounds", "track"]
