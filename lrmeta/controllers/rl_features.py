"""What an RL learning-rate policy observes: configuration, features, decisions.

The RL environment (:mod:`lrmeta.rl.env`) and the frozen policy
(:mod:`lrmeta.controllers.rl_policy`) both build their observations here, so
that a deployed policy sees exactly the observations it was trained on:

* :class:`PolicyConfig`: the static configuration both read;
* :class:`FeatureState`, :func:`init_features` and :func:`track`: the
  per-step statistics of the training signals (``value=``, ``val_value=``,
  ``val_probs=``, the extra args of the policy's transformation);
* :func:`observe`: the observation vector at a decision;
* :func:`decide`: a decision applied to the :class:`RLPolicyState`;
* :func:`decision_bounds`: where in the budget the decisions fall
  (``decision_spacing``), read by the environment's windows and the frozen
  policy's decision steps alike.

Observation (``features="basic"``, 8 entries; every entry is a ratio, a log
ratio or a fraction, so one policy transfers between tasks and models):

  0. ``log(train_ema / L0)``: smoothed training loss over the first loss seen;
  1. ``log(val / L0)``: last validation loss over the first loss seen;
  2. ``log(train_ema / train_ema at the last decision)``;
  3. ``log(val / val at the last decision)``;
  4. ``log(grad_norm_ema / first grad norm)``;
  5. coefficient of variation of the gradient norm since the last decision;
     (the "gradient" is what reaches the policy's transformation: the raw
     gradient when it comes first in a chain, the base optimizer's update,
     e.g. the momentum trace times the base rate, when chained after it);
  6. ``log`` of the learning-rate multiplier (LR over the base LR);
  7. fraction of the budget used.

``features="xu2019"`` appends four modelled on the state of Xu, Dai, Kemp and
Metz (2019), normalised in lrmeta's way (their own 9 raw features are
:mod:`lrmeta.controllers.rl_xu2019`):

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
  5. ``log(grad_norm_ema / first grad norm)`` (the norm of what reaches the
     policy's transformation, as for entry 4 of ``"basic"``), in
     ``[-5, 5]``.

A missing signal (no validation loss yet, no decision window finished) or a
NaN gives 0, ``+-inf`` gives the range's bound.

References:
  Xu, Dai, Kemp, Metz, "Learning an Adaptive Learning Rate Schedule",
  arXiv:1909.09712, 2019. Xu, Qin, Wang, Liu, "Reinforcement Learning for
  Learning Rate Control", arXiv:1705.11159, 2017.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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
BASE_SCHEDULES = ("constant", "cosine", "wsd")
DECISION_SPACINGS = ("uniform", "densify")
# "densify": this fraction of the decisions falls in the first
# DENSIFY_KNEE[1] of the budget, the rest in the remainder.
DENSIFY_KNEE = (0.5, 0.7)


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
  """Static configuration shared by the environment and the frozen policy.

  Attributes:
    steps_per_action: inner steps between two decisions (N).
    total_steps: inner-step budget of a run (for the budget-fraction feature).
    features: ``"basic"``, ``"xu2019"`` or ``"scale_free"`` (see the module
      docstring).
    action: ``"discrete"`` (choose one of ``factors`` every N steps,
      lrmeta's choice) or ``"continuous"`` (a Gaussian log-factor clipped to
      ``+-max_log_factor``, modelled on the real-valued actor of Xu, Qin et
      al. 2017). Xu et al. (2019)'s per-step multiplier is
      :mod:`lrmeta.controllers.rl_xu2019`.
    factors: multiplicative LR factors of the discrete action.
    max_log_factor: bound of the continuous log-factor per decision.
    min_log_scale, max_log_scale: bounds of ``log(lr / base_lr)``.
    ema: decay of the training-loss and gradient-norm moving averages.
    probe_size: probe images for the prediction-variance features.
    hidden: widths of the actor's hidden layers.
    base_schedule: ``"constant"`` (the rate is ``base_lr * exp(log_scale)``),
      ``"cosine"`` (that times ``(1 + cos(pi * count / total_steps))/2``:
      the policy corrects a cosine schedule) or ``"wsd"`` (that times the
      warm-up-stable-decay baseline's unit schedule: hold, then a linear
      decay to 0 over the last fifth of the budget; the policy corrects a
      hold-then-cut schedule).
    decision_spacing: where the ``num_decisions`` decisions fall in the
      budget (:func:`decision_bounds`): ``"uniform"`` (every
      ``steps_per_action`` steps) or ``"densify"`` (the same number of
      decisions, half of them in the first 70 % of the budget and half in
      the last 30 %, so the interval shrinks towards the end: 28 steps,
      then 12, for 20 decisions over 400 steps). At any budget the frozen
      policy places its decisions the same way.
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
  decision_spacing: str = "uniform"

  def __post_init__(self):
    fn = "PolicyConfig"
    checks.one_of(fn, "decision_spacing", self.decision_spacing,
                  DECISION_SPACINGS)
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


def decision_bounds(cfg: PolicyConfig) -> np.ndarray:
  """The steps at which decision windows start, then the budget:
  ``[num_decisions + 1]`` increasing integers from 0 to ``total_steps``.

  ``"uniform"``: ``k * steps_per_action`` (the last window shorter when
  ``steps_per_action`` does not divide the budget). ``"densify"``: the
  piecewise-linear map of ``k / num_decisions`` that sends the first half
  of the decisions to the first 70 % of the budget and the second half to
  the last 30 % (:data:`DENSIFY_KNEE`), rounded to steps.

  Raises:
    ValueError: a ``"densify"`` window would be empty (fewer than about
      ``num_decisions / 0.6`` steps in the budget).
  """
  d, t = cfg.num_decisions, cfg.total_steps
  if cfg.decision_spacing == "uniform":
    return np.minimum(np.arange(d + 1) * cfg.steps_per_action, t)
  half, early = DENSIFY_KNEE
  u = np.arange(d + 1) / d
  g = np.where(u <= half, u * early / half,
               early + (u - half) * (1 - early) / (1 - half))
  bounds = np.floor(t * g + 0.5).astype(np.int64)
  if np.any(np.diff(bounds) < 1):
    raise ValueError(f"decision_spacing='densify': {d} decisions do not fit "
                     f"a budget of {t} steps (an empty window)")
  return bounds


def window_lengths(cfg: PolicyConfig) -> tuple[int, ...]:
  """Steps of each decision window (:func:`decision_bounds`)."""
  return tuple(int(n) for n in np.diff(decision_bounds(cfg)))


def is_decision_step(cfg: PolicyConfig, count: jax.Array) -> jax.Array:
  """Whether update ``count`` (0-based) starts a decision window: every
  ``steps_per_action``-th update (``"uniform"``, past the budget too), or
  one of :func:`decision_bounds` before the budget (``"densify"``)."""
  if cfg.decision_spacing == "uniform":
    return count % cfg.steps_per_action == 0
  starts = jnp.asarray(decision_bounds(cfg)[:-1], jnp.int32)
  return jnp.any(count == starts)


def is_window_end(cfg: PolicyConfig, step: jax.Array) -> jax.Array:
  """Whether update ``step`` (0-based) is the last of a decision window."""
  if cfg.decision_spacing == "uniform":
    return (step + 1) % cfg.steps_per_action == 0
  ends = jnp.asarray(decision_bounds(cfg)[1:], jnp.int32)
  return jnp.any(step + 1 == ends)


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


__all__ = ["BASE_SCHEDULES", "DECISION_SPACINGS", "DENSIFY_KNEE",
           "FEATURE_NAMES", "FEATURE_SETS", "SCALE_FREE_NAMES",
           "SCALE_FREE_RANGES", "FeatureState", "PolicyConfig",
           "RLPolicyState", "decide", "decision_bounds", "feature_names",
           "init_features", "is_decision_step", "is_window_end", "observe",
           "output_layer", "scale_free_bounds", "track", "window_lengths"]
