"""The learning-rate controller of Xu, Dai, Kemp, Metz (2019), as their
released code builds it, as an Optax transformation.

Source followed (Apache-2.0; read, not copied): google-research/google-research,
``adaptive_learning_rate_tuner/learn_adaptive_learning_rate.py`` at commit
0c1bbe5 ("the script" below). Line numbers are of that file; where a choice
sits in the body of ``main()`` the statement is quoted instead.

Every step (``keep_lr_interval`` 1, line 48):

* Action (``AdaptiveTuner.choose_action``): the actor's Gaussian, mean from an
  MLP of 32 ReLU units (``build_action_model``, layer ``layer1``) and a fixed
  standard deviation 0.1 (``action_variance``, line 55), is sampled; the
  sample is clipped to ``[-0.2, 0.5]`` (lines 51-52) and mapped to the
  multiplier ``(a - 0.15) * 0.1 + 1`` (``lr_shift`` line 53, ``lr_scale``
  line 54), so a multiplier in ``[0.965, 1.035]`` of the current rate. With a
  decision interval ``keep_interval > 1`` the rate is kept between decisions,
  and every one of the last 9 steps decides (``if keep_lr_interval == 1 or
  i > train_steps - 10`` in ``main()``).
* Inner optimizer: Adam (``tf.train.AdamOptimizer(learning_rate=
  learned_learning_rate)`` in ``main()``) from the rate 0.01
  (``default_learning_rate``, line 39). Here: chain this transformation after
  ``optax.adam(base_rate)``; it scales the updates by the multiplier product.
* State, 9 numbers in the script's order (``new_observation`` in ``main()``),
  measured at a decision step on the parameters before the update:
  validation loss; EMA (decay 0.8, ``exp_decay``) of ``log var`` of the
  softmax predictions on the training batch (variance over all entries of the
  ``[batch, classes]`` matrix); EMA of ``log var`` of their change since the
  previous decision; training loss; mean and variance of the first-layer
  kernel (the script's ``w1``: the first dense layer, also in its CNN) and of
  the last-layer kernel (``w2``); the current rate. Each EMA starts at its
  first value (``if prediction_log_var_ema == 0``); the first "previous
  predictions" are uniform random numbers (``prev_prediction =
  np.random.rand(batch_size, 10)``); the observation before the first step is
  all ones (``init_observation``).

lrmeta's choices, as named options: the validation loss is measured on the
first ``val_examples`` validation images (the script: the whole 10,000 every
step), and a non-finite loss is read as ``nonfinite_loss`` (the script has no
guard). Greedy deployment (``deterministic=True``: the Gaussian's mean) is
lrmeta's; the script always samples.

The trainer (PPO on one episode per update, the script's reward) is
:mod:`lrmeta.rl.xu2019`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers import checks

NUM_FEATURES = 9
FEATURE_NAMES = ("val loss", "log pred var EMA", "log pred change var EMA",
                 "train loss", "first-layer w mean", "first-layer w var",
                 "last-layer w mean", "last-layer w var", "learning rate")
LOG_BASE = 1e-10  # the script's LOG_BASE (line 60)


@dataclasses.dataclass(frozen=True)
class Xu2019Config:
  """Static configuration of the controller (defaults: the script's).

  Attributes:
    total_steps: the run's budget (``train_steps``).
    clip_low, clip_high: the action's clip (lines 51-52).
    shift, scale: multiplier ``(a - shift) * scale + 1`` (lines 53-54).
    action_std: the Gaussian's fixed standard deviation (line 55).
    keep_interval: steps between decisions (``keep_lr_interval``, line 48).
    forced_last: the last steps that all decide (``i > train_steps - 10``:
      9 steps).
    ema_decay: decay of the prediction-variance EMAs (``exp_decay = 0.8``).
    hidden: actor and critic hidden width (32, ``build_action_model`` and the
      critic scope of ``AdaptiveTuner.__init__``).
    val_examples: validation images measured at each decision (lrmeta's CPU
      scale; the script uses the whole validation split).
    nonfinite_loss: value a non-finite loss reads as (lrmeta's guard).
  """

  total_steps: int = 200
  clip_low: float = -0.2
  clip_high: float = 0.5
  shift: float = 0.15
  scale: float = 0.1
  action_std: float = 0.1
  keep_interval: int = 1
  forced_last: int = 9
  ema_decay: float = 0.8
  hidden: int = 32
  val_examples: int = 1000
  nonfinite_loss: float = 10.0

  def __post_init__(self):
    fn = "Xu2019Config"
    for name in ("total_steps", "keep_interval", "hidden", "val_examples"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{fn}: {name} must be >= 1, got "
                         f"{getattr(self, name)}")
    if self.clip_low >= self.clip_high:
      raise ValueError(f"{fn}: clip_low must be below clip_high")
    checks.positive(fn, "action_std", self.action_std)
    checks.unit_interval(fn, "ema_decay", self.ema_decay)


class FeatState(NamedTuple):
  obs: jax.Array         # [9], the observation the next decision reads
  pred_ema: jax.Array    # EMA of log var(predictions)
  change_ema: jax.Array  # EMA of log var(prediction change)
  prev_probs: jax.Array  # [batch, classes], predictions at the last decision
  decisions: jax.Array   # int32, decisions taken


class Xu2019State(NamedTuple):
  count: jax.Array          # int32, updates applied
  learning_rate: jax.Array  # the multiplier product applied (rate / base)
  rate: jax.Array           # the current rate (the 9th feature)
  feats: FeatState
  action: jax.Array         # raw Gaussian sample of the last decision
  multiplier: jax.Array     # its multiplier
  decided: jax.Array        # bool, whether the last update decided
  key: jax.Array            # raw PRNG key data of the sampling


class ScalarMLP(nn.Module):
  """Dense 32 ReLU -> Dense 1, Glorot-uniform kernels (TF's default for
  ``tf.layers.dense``): the actor's Gaussian mean (``build_action_model``)
  and the critic (the critic scope of ``AdaptiveTuner.__init__``) alike."""

  hidden: int = 32

  @nn.compact
  def __call__(self, obs):
    init = nn.initializers.glorot_uniform()
    x = nn.relu(nn.Dense(self.hidden, kernel_init=init)(obs))
    return nn.Dense(1, kernel_init=init)(x)[..., 0]


ActorNet = ScalarMLP


def multiplier(cfg: Xu2019Config, action: jax.Array) -> jax.Array:
  """``(clip(a, clip_low, clip_high) - shift) * scale + 1`` (the script's
  ``choose_action``): 0.5 -> 1.035, -0.2 -> 0.965 with the defaults."""
  a = jnp.clip(jnp.asarray(action, jnp.float32), cfg.clip_low, cfg.clip_high)
  return (a - cfg.shift) * cfg.scale + 1.0


def decides(cfg: Xu2019Config, count: jax.Array) -> jax.Array:
  """Whether update ``count`` (0-based) takes a decision."""
  return ((count % cfg.keep_interval == 0)
          | (count > cfg.total_steps - 1 - cfg.forced_last))


def _finite(x, cfg: Xu2019Config):
  x = jnp.asarray(x, jnp.float32)
  return jnp.where(jnp.isfinite(x), x, cfg.nonfinite_loss)


def layer_kernels(params: optax.Params) -> tuple[jax.Array, jax.Array]:
  """The first and last 2-D leaves (dense kernels; the script's ``w1`` and
  ``w2`` for its MLP and CNN, and for lrmeta's ``mlp`` and ``small_cnn``)."""
  two_d = [x for x in jax.tree.leaves(params) if jnp.ndim(x) == 2]
  if not two_d:
    raise ValueError("xu2019 features need a model with dense (2-D) kernels")
  return two_d[0], two_d[-1]


def init_features(key: jax.Array, batch_size: int, num_classes: int
                  ) -> FeatState:
  """All-ones observation and random "previous predictions", as the script
  starts an episode."""
  z = jnp.zeros((), jnp.float32)
  return FeatState(jnp.ones((NUM_FEATURES,), jnp.float32), z, z,
                   jax.random.uniform(key, (batch_size, num_classes)),
                   jnp.zeros((), jnp.int32))


def track(cfg: Xu2019Config, fs: FeatState, *, val_loss, train_loss, probs,
          params, rate) -> FeatState:
  """The state after a decision step (the script's ``new_observation``)."""
  d = cfg.ema_decay
  first = fs.decisions == 0
  lv = jnp.log(jnp.var(probs) + LOG_BASE)
  lc = jnp.log(jnp.var(probs - fs.prev_probs) + LOG_BASE)
  pred = jnp.where(first, lv, d * fs.pred_ema + (1 - d) * lv)
  change = jnp.where(first, lc, d * fs.change_ema + (1 - d) * lc)
  w1, w2 = layer_kernels(params)
  obs = jnp.stack([_finite(val_loss, cfg), pred, change,
                   _finite(train_loss, cfg), w1.mean(), w1.var(), w2.mean(),
                   w2.var(), jnp.asarray(rate, jnp.float32)])
  obs = jnp.nan_to_num(obs.astype(jnp.float32), nan=cfg.nonfinite_loss,
                       posinf=cfg.nonfinite_loss, neginf=-cfg.nonfinite_loss)
  return FeatState(obs, pred, change, probs.astype(jnp.float32),
                   fs.decisions + 1)


def xu2019_policy(actor_params: Any, cfg: Xu2019Config, learning_rate: Any,
                  batch_shape: tuple[int, int], *, deterministic: bool = True,
                  seed: int = 0) -> optax.GradientTransformationExtraArgs:
  """The controller: chain it after ``optax.adam(learning_rate)``.

  Reads the extra args ``value=`` (training loss), ``val_value=``
  (validation loss) and ``train_probs=`` (softmax of the training batch,
  ``batch_shape``) that :func:`xu2019_signals` gives.

  Args:
    actor_params: :class:`ActorNet` parameters.
    cfg: the static configuration.
    learning_rate: the starting rate (the base optimizer's rate).
    batch_shape: ``(batch_size, num_classes)`` of the training predictions.
    deterministic: act with the Gaussian's mean (else sample it).
    seed: PRNG seed of the sampling.
  """
  net = ActorNet(cfg.hidden)

  def init_fn(params):
    del params
    key = jax.random.key(seed)
    one = jnp.ones((), jnp.float32)
    return Xu2019State(
        jnp.zeros((), jnp.int32), one, one * learning_rate,
        init_features(jax.random.fold_in(key, 1), *batch_shape),
        jnp.zeros((), jnp.float32), one, jnp.zeros((), bool),
        jax.random.key_data(key))

  def update_fn(updates, state, params=None, *, value=None, val_value=None,
                train_probs=None, **extra):
    del extra
    if params is None or value is None or val_value is None \
        or train_probs is None:
      raise ValueError("xu2019_policy needs params and the extra args value=, "
                       "val_value=, train_probs= (xu2019_signals)")
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    mean = net.apply(actor_params, state.feats.obs)
    a = mean if deterministic else (
        mean + cfg.action_std * jax.random.normal(sub, mean.shape))
    d = decides(cfg, state.count)
    m = jnp.where(d, multiplier(cfg, a), 1.0)
    rate = state.rate * m
    new = track(cfg, state.feats, val_loss=val_value, train_loss=value,
                probs=train_probs, params=params, rate=rate)
    feats = jax.tree.map(lambda n, o: jnp.where(d, n, o), new, state.feats)
    lr = state.learning_rate * m
    updates = jax.tree.map(lambda u: (u * lr).astype(u.dtype), updates)
    return updates, Xu2019State(state.count + 1, lr, rate, feats,
                                jnp.where(d, a, state.action), m, d,
                                jax.random.key_data(key))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def xu2019_adam(actor_params: Any, cfg: Xu2019Config, learning_rate: Any,
                batch_shape: tuple[int, int], **kwargs
                ) -> optax.GradientTransformationExtraArgs:
  """Adam (rate recorded) under the controller: the script's inner
  optimizer."""
  base = optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
  return optax.chain(base, xu2019_policy(actor_params, cfg, learning_rate,
                                         batch_shape, **kwargs))


def xu2019_signals(cfg: Xu2019Config):
  """Training-loop signals: ``value=`` the batch loss, ``train_probs=`` its
  softmax predictions, ``val_value=`` the loss on the first
  ``cfg.val_examples`` validation images (measured only on decision steps;
  NaN otherwise, which the controller then ignores)."""

  def signals(task, state, batch, loss, logits):
    del batch

    def measure(_):
      return task.evaluate(state.params, state.model_state, "val",
                           cfg.val_examples)["loss"].astype(jnp.float32)

    val = jax.lax.cond(decides(cfg, state.step), measure,
                       lambda _: jnp.asarray(jnp.nan, jnp.float32), None)
    return {"value": loss, "val_value": val,
            "train_probs": jax.nn.softmax(logits.astype(jnp.float32), -1)}
  return signals


def init_actor(cfg: Xu2019Config, key: jax.Array) -> Any:
  return ActorNet(cfg.hidden).init(key, jnp.ones((NUM_FEATURES,), jnp.float32))


__all__ = ["ActorNet", "FEATURE_NAMES", "ScalarMLP", "FeatState", "NUM_FEATURES",
           "Xu2019Config", "Xu2019State", "decides", "init_actor",
           "init_features", "layer_kernels", "multiplier", "track",
           "xu2019_adam", "xu2019_policy", "xu2019_signals"]
