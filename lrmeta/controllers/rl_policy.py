"""A frozen RL learning-rate policy as an Optax transformation.

The policy network (trained by :mod:`lrmeta.rl`) reads normalised features of
the training dynamics every ``steps_per_action`` updates and multiplies the
learning rate by a factor it chooses. This module owns everything the policy
and the RL environment must agree on, so that a policy deployed here sees
exactly the observations it was trained on:

* :class:`FeatureState` and :func:`observe`: the per-step feature tracker and
  the observation vector built from it;
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

Observation (``features="basic"``, 8 entries; every entry is a ratio, a log
ratio or a fraction, so one policy transfers between tasks and models):

  0. ``log(train_ema / L0)``: smoothed training loss over the first loss seen;
  1. ``log(val / L0)``: last validation loss over the first loss seen;
  2. ``log(train_ema / train_ema at the last decision)``;
  3. ``log(val / val at the last decision)``;
  4. ``log(grad_norm_ema / first grad norm)``;
  5. coefficient of variation of the gradient norm since the last decision;
     (the "gradient" is what reaches this transformation: the raw gradient
     when it comes first in a chain, the base optimizer's update, e.g. the
     momentum trace times the base rate, when chained after it);
  6. ``log`` of the learning-rate multiplier (LR over the base LR);
  7. fraction of the budget used.

``features="xu2019"`` appends the four of Xu, Dai, Kemp and Metz (2019):

  8. variance of the predicted class probabilities on a fixed probe batch of
     validation images (scaled by 4 so it lies in [0, 1]);
  9. variance of the change of those predictions since the previous probe;
  10. mean of the output-layer weights over their standard deviation;
  11. ``log`` of the output-layer weight variance over its first value.

Every entry goes through ``nan_to_num`` and is clipped to ``[-10, 10]``, so
diverging runs (NaN/inf losses) still give finite observations.

``features="scale_free"`` (6 entries) keeps only fractions, log ratios and
per-window slopes, so that a policy trained on tiny MLPs reads a larger
network's run in the same range: multiplying the loss by a constant (and so
the gradients) leaves every entry unchanged, and no entry carries the units
of the loss, the gradient or the base rate.
Each entry is clipped to its own range (:data:`SCALE_FREE_RANGES`):

  0. fraction of the budget used, ``count / total_steps``, in ``[0, 1]``;
  1. ``log(train_ema / L0)``, the smoothed training loss over the first loss
     seen, in ``[-5, 2]``;
  2. slope of the log training-loss EMA over the last decision window,
     ``log(train_ema / train_ema at the last decision)`` (per window, so it
     reads the same whatever the window's length; over the first window the
     reference is ``L0``), in ``[-3, 3]``;
  3. generalisation gap ``log(val / train_ema)``, the last validation loss
     (the ``val_value=`` signal) over the smoothed training loss, in
     ``[-3, 3]``;
  4. ``log(lr / base lr)``, the log multiplier, in ``[min_log_scale,
     max_log_scale]`` (with ``base_schedule="cosine"`` the policy's own
     multiplier, without the cosine factor that entry 0 determines);
  5. ``log(grad_norm_ema / first grad norm)`` (the norm of what reaches this
     transformation, as for entry 4 of ``"basic"``), in ``[-5, 5]``.

A missing signal (no validation loss yet, no decision window finished) or a
NaN gives 0, ``+-inf`` gives the range's bound.

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

import dataclasses
import math
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers import checks

FEATURE_SETS = {"basic": 8, "xu2019": 12, "scale_free": 6}
FEATURE_NAMES = ("log train/L0", "log val/L0", "log train change",
                 "log val change", "log gnorm/g0", "gnorm CV", "log lr/base",
                 "budget used", "pred var", "pred change var",
                 "out-w mean/std", "log out-w var/v0")
SCALE_FREE_NAMES = ("budget used", "log train/L0", "log train slope",
                    "log val/train", "log lr/base", "log gnorm/g0")
# Clip range of each "scale_free" entry; None: the PolicyConfig's
# [min_log_scale, max_log_scale].
SCALE_FREE_RANGES = ((0.0, 1.0), (-5.0, 2.0), (-3.0, 3.0), (-3.0, 3.0), None,
                     (-5.0, 5.0))
_CLIP = 10.0
_EPS = 1e-8
BASE_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
  """Static configuration shared by the environment and the frozen policy.

  Attributes:
    steps_per_action: inner steps between two decisions (N).
    total_steps: inner-step budget of a run (for the budget-fraction feature).
    features: ``"basic"``, ``"xu2019"`` or ``"scale_free"`` (see the module
      docstring).
    action: ``"discrete"`` (choose one of ``factors``, as Xu et al. 2019) or
      ``"continuous"`` (a Gaussian log-factor clipped to ``+-max_log_factor``,
      closer to the real-valued actor of Xu, Qin et al. 2017).
    factors: multiplicative LR factors of the discrete action.
    max_log_factor: bound of the continuous log-factor per decision.
    min_log_scale, max_log_scale: bounds of ``log(lr / base_lr)``.
    ema: decay of the training-loss and gradient-norm moving averages.
    probe_size: probe images for the prediction-variance features.
    hidden: widths of the actor's hidden layers.
    base_schedule: ``"constant"`` (the rate is ``base_lr * exp(log_scale)``)
      or ``"cosine"`` (that times ``(1 + cos(pi * count / total_steps))/2``:
      the policy corrects a cosine schedule).
  """

  steps_per_action: int = 20
  total_steps: int = 400
  features: str = "basic"
  action: str = "discrete"
  factors: tuple[float, ...] = (0.5, 0.8, 1.0, 1.25, 2.0)
  max_log_factor: float = 0.7
  min_log_scale: float = -9.0
  max_log_scale: float = 3.0
  ema: float = 0.9
  probe_size: int = 64
  hidden: tuple[int, ...] = (32, 32)
  base_schedule: str = "constant"

  def __post_init__(self):
    fn = "PolicyConfig"
    checks.one_of(fn, "features", self.features, tuple(FEATURE_SETS))
    checks.one_of(fn, "base_schedule", self.base_schedule, BASE_SCHEDULES)
    checks.one_of(fn, "action", self.action, ("discrete", "continuous"))
    checks.positive_int(fn, "steps_per_action", self.steps_per_action)
    checks.positive_int(fn, "total_steps", self.total_steps)
    if not self.factors or any(
        not (checks.is_static_number(f) and f > 0) for f in self.factors):
      raise ValueError(f"{fn}: factors must be positive numbers, got "
                       f"{self.factors}")
    checks.positive(fn, "max_log_factor", self.max_log_factor)
    if (checks.is_static_number(self.min_log_scale)
        and checks.is_static_number(self.max_log_scale)
        and not self.min_log_scale < self.max_log_scale):
      raise ValueError(f"{fn}: max_log_scale must be > min_log_scale, got "
                       f"min_log_scale={self.min_log_scale}, "
                       f"max_log_scale={self.max_log_scale}")
    checks.unit_interval(fn, "ema", self.ema)
    checks.positive_int(fn, "probe_size", self.probe_size)
    for width in self.hidden:
      checks.positive_int(fn, "hidden", width)

  @property
  def obs_dim(self) -> int:
    return FEATURE_SETS[self.features]

  @property
  def num_decisions(self) -> int:
    return -(-self.total_steps // self.steps_per_action)


class FeatureState(NamedTuple):
  """Running statistics of the training signals (all float32)."""

  loss0: jax.Array  # first training loss seen (NaN before)
  gnorm0: jax.Array  # first gradient norm seen
  wvar0: jax.Array  # output-layer weight variance at the first decision
  train_ema: jax.Array
  train_at_decision: jax.Array
  val_last: jax.Array  # NaN until a validation loss arrives
  val_at_decision: jax.Array
  gn_ema: jax.Array
  gn_sum: jax.Array  # gradient-norm sums since the last decision
  gn_sqsum: jax.Array
  gn_n: jax.Array
  pred_var: jax.Array
  pred_change_var: jax.Array
  probs_prev: jax.Array  # [probe, classes] or [0, 0]


class RLPolicyState(NamedTuple):
  """State of :func:`rl_features_scale` / :func:`rl_lr_policy`."""

  count: jax.Array  # int32
  learning_rate: jax.Array  # the multiplier applied at the last update
  log_scale: jax.Array  # log of the multiplier used until the next decision
  feats: FeatureState
  key: jax.Array  # uint32 key data, for the stochastic mode


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def output_layer(params: optax.Params) -> jax.Array:
  """The output-layer kernel: the last 2-D leaf in flattening order.

  Flax names layers ``Dense_0, Dense_1, ...`` so the last 2-D leaf is the
  classifier's kernel for the lrmeta models (fewer than 10 dense layers).
  Falls back to the last leaf of any shape.
  """
  leaves = jax.tree.leaves(params)
  two_d = [x for x in leaves if jnp.ndim(x) == 2]
  return (two_d or leaves)[-1]


def _num_classes(params) -> int:
  w = output_layer(params)
  return int(w.shape[-1]) if jnp.ndim(w) else 1


def init_features(cfg: PolicyConfig, params: optax.Params) -> FeatureState:
  nan = _f32(jnp.nan)
  zero = _f32(0.0)
  probs = (jnp.full((cfg.probe_size, _num_classes(params)), jnp.nan,
                    jnp.float32)
           if cfg.features == "xu2019" else jnp.zeros((0, 0), jnp.float32))
  return FeatureState(nan, nan, nan, nan, nan, nan, nan, nan, zero, zero,
                      zero, zero, zero, probs)


def _first(old, new):
  return jnp.where(jnp.isnan(old), new, old)


def _ema(old, new, decay):
  return jnp.where(jnp.isnan(old), new, decay * old + (1 - decay) * new)


def track(cfg: PolicyConfig, f: FeatureState, grads: optax.Updates, *,
          value=None, val_value=None, val_probs=None) -> FeatureState:
  """Folds one step's signals into the feature statistics."""
  gn = _f32(optax.tree.norm(grads))
  f = f._replace(gnorm0=_first(f.gnorm0, gn), gn_ema=_ema(f.gn_ema, gn, cfg.ema),
                 gn_sum=f.gn_sum + gn, gn_sqsum=f.gn_sqsum + gn * gn,
                 gn_n=f.gn_n + 1)
  if value is not None:
    v = _f32(value)
    f = f._replace(loss0=_first(f.loss0, v),
                   train_ema=_ema(f.train_ema, v, cfg.ema))
  if val_value is not None:
    vv = _f32(val_value)
    f = f._replace(val_last=jnp.where(jnp.isnan(vv), f.val_last, vv))
  if cfg.features == "xu2019" and val_probs is not None:
    p = jnp.asarray(val_probs, jnp.float32).reshape(f.probs_prev.shape)
    fresh = ~jnp.isnan(p).any()
    pv = jnp.var(p, axis=0).mean()
    had_prev = ~jnp.isnan(f.probs_prev).any()
    cv = jnp.where(had_prev, jnp.var(p - f.probs_prev, axis=0).mean(), 0.0)
    f = f._replace(pred_var=jnp.where(fresh, pv, f.pred_var),
                   pred_change_var=jnp.where(fresh, cv, f.pred_change_var),
                   probs_prev=jnp.where(fresh, p, f.probs_prev))
  return f


def _log_ratio(a, b):
  return jnp.log(jnp.maximum(a, _EPS)) - jnp.log(jnp.maximum(b, _EPS))


def feature_names(features: str) -> tuple[str, ...]:
  """Names of the observation entries of a feature set."""
  if features == "scale_free":
    return SCALE_FREE_NAMES
  return FEATURE_NAMES[:FEATURE_SETS[features]]


def scale_free_bounds(cfg: PolicyConfig) -> tuple[jax.Array, jax.Array]:
  """Lower and upper clip bounds of the ``"scale_free"`` entries."""
  ranges = [r if r is not None else (cfg.min_log_scale, cfg.max_log_scale)
            for r in SCALE_FREE_RANGES]
  lo, hi = zip(*ranges)
  return jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32)


def _observe_scale_free(cfg: PolicyConfig, state: RLPolicyState) -> jax.Array:
  f = state.feats
  # Over the first window there is no EMA at a previous decision yet: the
  # slope is measured from the first loss.
  prev = _first(f.train_at_decision, f.loss0)
  obs = jnp.stack([
      _f32(state.count) / cfg.total_steps,
      _log_ratio(f.train_ema, f.loss0),
      _log_ratio(f.train_ema, prev),
      _log_ratio(f.val_last, f.train_ema),
      _f32(state.log_scale),
      _log_ratio(f.gn_ema, f.gnorm0),
  ])
  lo, hi = scale_free_bounds(cfg)
  obs = jnp.where(jnp.isnan(obs), 0.0, obs)
  return jnp.clip(obs, lo, hi)


def observe(cfg: PolicyConfig, state: RLPolicyState,
            params: optax.Params) -> jax.Array:
  """The observation vector at a decision (see the module docstring)."""
  if cfg.features == "scale_free":
    return _observe_scale_free(cfg, state)
  f = state.feats
  l0 = f.loss0
  gn_mean = f.gn_sum / jnp.maximum(f.gn_n, 1.0)
  gn_var = jnp.maximum(f.gn_sqsum / jnp.maximum(f.gn_n, 1.0) - gn_mean ** 2,
                       0.0)
  obs = [
      _log_ratio(f.train_ema, l0),
      _log_ratio(f.val_last, l0),
      _log_ratio(f.train_ema, f.train_at_decision),
      _log_ratio(f.val_last, f.val_at_decision),
      _log_ratio(f.gn_ema, f.gnorm0),
      jnp.sqrt(gn_var) / (gn_mean + _EPS),
      state.log_scale,
      state.count / cfg.total_steps,
  ]
  if cfg.features == "xu2019":
    w = _f32(output_layer(params))
    wvar = jnp.var(w)
    obs += [4.0 * f.pred_var, 100.0 * f.pred_change_var,
            jnp.mean(w) / (jnp.sqrt(wvar) + _EPS),
            _log_ratio(wvar, _first(f.wvar0, wvar))]
  # NaN (missing or diverged) -> 0; +-inf -> the clip bound.
  obs = jnp.stack([_f32(o) for o in obs])
  obs = jnp.nan_to_num(obs, nan=0.0, posinf=_CLIP, neginf=-_CLIP)
  return jnp.clip(obs, -_CLIP, _CLIP)


def decide(cfg: PolicyConfig, state: RLPolicyState, params: optax.Params,
           log_factor: jax.Array) -> RLPolicyState:
  """Applies a decision: multiplies the LR by ``exp(log_factor)`` and starts a
  new decision window. The environment and the frozen policy both call it."""
  f = state.feats
  w_var = jnp.var(_f32(output_layer(params)))
  f = f._replace(train_at_decision=f.train_ema, val_at_decision=f.val_last,
                 wvar0=_first(f.wvar0, w_var), gn_sum=_f32(0.0),
                 gn_sqsum=_f32(0.0), gn_n=_f32(0.0))
  log_scale = jnp.clip(state.log_scale + _f32(log_factor), cfg.min_log_scale,
                       cfg.max_log_scale)
  return state._replace(log_scale=log_scale, feats=f)


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
  (held at 0 past the budget)."""
  if cfg.base_schedule == "constant":
    return jnp.ones((), jnp.float32)
  frac = jnp.minimum(_f32(count) / cfg.total_steps, 1.0)
  return 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def _transform(cfg: PolicyConfig, actor_params, deterministic: bool,
               seed: int) -> optax.GradientTransformationExtraArgs:
  net = make_policy_net(cfg) if actor_params is not None else None

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

      state = jax.lax.cond(state.count % cfg.steps_per_action == 0, act,
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
