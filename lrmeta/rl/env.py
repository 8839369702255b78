"""lrmeta's learning-rate control environment (``env.mode = "lrmeta"``): one
training run per episode.

This is lrmeta's own design, not the environment of any paper: SGD with
momentum, a discrete (or log-factor) change every N steps, features that are
ratios, and a telescoping-improvement reward with a final term. The
environment as Xu, Dai, Kemp, Metz (2019) built it in their released code
(Adam, a multiplier in [0.965, 1.035] every step, their 9 raw features,
reward ``2 - validation loss`` every step) is ``env.mode = "xu2019"``,
:mod:`lrmeta.rl.xu2019`.

The environment is a set of pure functions on an explicit state, so a batch
of environments is one ``jax.vmap``-ed, jitted program: ``reset(key)`` starts
a training run, ``step(state, action)`` multiplies the learning rate by the
chosen factor and runs ``steps_per_action`` inner steps with
:func:`lrmeta.train.run_steps`, ``final_reward(state)`` scores the finished run.

Set-ups (see :class:`lrmeta.controllers.rl_policy.PolicyConfig`):

* PPO (:mod:`lrmeta.rl.ppo`) with ``features="xu2019"``: lrmeta's 8 ratio
  features plus four normalised ones modelled on the quantities Xu, Dai,
  Kemp, Metz (2019) observe (prediction variance and its change, output-layer
  weight statistics), ``action="discrete"`` (one of a few factors every N
  steps: lrmeta's choice; the authors' code multiplies by a continuous factor
  every step), ``reward="val_loss"`` (lrmeta's improvement reward, not the
  authors' ``2 - validation loss``).
* The actor-critic of :mod:`lrmeta.rl.actor_critic` (modelled on Xu, Qin,
  Wang, Liu 2017): ``action="continuous"`` (a real-valued action per
  decision; here a log-factor rather than an absolute rate, so it composes
  with any base rate), ``reward="train_loss"`` (decrease of the training
  loss).
* The task family (:mod:`lrmeta.rl.family`): one environment per instance
  shape of :class:`lrmeta.tasks.family.Family`, every budget split into the
  same number of decisions, with ``features="scale_free"`` so that the
  observations of different networks and losses share one range.

Reward, with ``v`` the validation loss (or the training loss EMA for
``reward="train_loss"``) capped at ``divergence_cap * v0`` (NaN counts as the
cap): ``shaping * (v_prev - v) / v0`` after each decision, and at the end
``final_weight * (v0 - v_final) / v0`` with ``v_final`` the loss on the first
``final_val_examples`` validation images; with the defaults the final term
dominates, so the policy is scored mainly on where the run ends.

Decision spacing (``policy.decision_spacing``, lrmeta's option):
``"uniform"`` decides every ``steps_per_action`` steps; ``"densify"`` puts
the same number of decisions half in the first 70 % of the budget, half in
the last 30 % (:func:`lrmeta.controllers.rl_features.decision_bounds`), so a
late cut can be timed finely (the authors' code of Xu et al. 2019 decides
every step). The frozen policy spaces its decisions the same at any budget.

Action choice (lrmeta's): the default is discrete, factors (0.5, 0.8, 1, 1.25,
2) every N steps; a discrete action is easy for PPO to explore and its greedy
mode is exactly reproducible by the deployed policy. (Xu et al. 2019's code
instead samples a continuous multiplier in [0.965, 1.035] every step; that is
``env.mode = "xu2019"``.) The continuous option (Gaussian log-factor clipped
to +-0.7 per decision) is modelled on the real-valued actor of Xu, Qin et
al. (2017).

References:
  Xu, Dai, Kemp, Metz, "Learning an Adaptive Learning Rate Schedule",
  arXiv:1909.09712, 2019. Xu, Qin, Wang, Liu, "Reinforcement Learning for
  Learning Rate Control", arXiv:1705.11159, 2017.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers.rl_policy import (PolicyConfig, RLPolicyState,
                                          action_log_factor, decide,
                                          decision_bounds, is_window_end,
                                          make_policy_net, observe,
                                          policy_action, rl_features_scale,
                                          window_lengths)
from lrmeta.tasks.base import Task
from lrmeta.train import TrainState, init_state, run_steps
from lrmeta.train.state import train_step

_VAL_FOLD = 2  # fold-in tag of the validation-batch key


def _val_and_probs(task: Task, state: TrainState, batch_size: int,
                   probe_size: int, with_probs: bool):
  key = jax.random.fold_in(jax.random.fold_in(state.key, state.step),
                           _VAL_FOLD)
  vb = task.val_batch(key, batch_size)
  vl = task.loss(state.params, state.model_state, vb, train=False)[0]
  if not with_probs:
    return vl, None
  x = task.dataset.normalize(task.dataset.val_x[:probe_size])
  logits, _ = task.apply(state.params, state.model_state, x, train=False)
  return vl, jax.nn.softmax(logits.astype(jnp.float32), -1)


def rl_signals(cfg: PolicyConfig, batch_size: int = 256):
  """Signals for an RL policy: ``value=`` every step, and on the last step of
  each decision window (``(step + 1) % N == 0``, or the window ends of
  ``decision_spacing="densify"``) ``val_value=`` a validation
  minibatch loss and, for ``"xu2019"``, ``val_probs=`` the softmax outputs on
  the first ``probe_size`` validation images (NaN on other steps)."""
  with_probs = cfg.features == "xu2019"

  def signals(task, state, batch, loss, logits):
    del batch
    out = {"value": loss}
    num_classes = logits.shape[-1]

    def measure(_):
      vl, probs = _val_and_probs(task, state, batch_size, cfg.probe_size,
                                 with_probs)
      return (vl, probs) if with_probs else (vl,)

    def skip(_):
      nan = jnp.asarray(jnp.nan, loss.dtype)
      if with_probs:
        return nan, jnp.full((cfg.probe_size, num_classes), jnp.nan,
                             jnp.float32)
      return (nan,)

    res = jax.lax.cond(is_window_end(cfg, state.step), measure, skip, None)
    out["val_value"] = res[0]
    if with_probs:
      out["val_probs"] = res[1]
    return out
  return signals


@dataclasses.dataclass(frozen=True)
class LREnvConfig:
  """Environment configuration.

  Attributes:
    policy: what the policy observes and how it acts.
    base_lr: the initial (and base) learning rate of SGD.
    momentum: SGD momentum.
    val_batch_size: validation minibatch measured once per decision.
    reward: ``"val_loss"`` (improvement of the validation loss) or
      ``"train_loss"`` (of the training-loss EMA, modelled on Xu, Qin et al.
      2017); both lrmeta's shaping, see above.
    shaping: weight of the per-decision improvement rewards.
    final_weight: weight of the final-objective reward.
    final_val_examples: validation images scored at the end of an episode.
    divergence_cap: losses are capped at this multiple of the initial loss.
    init_log_lr_range: each episode starts at ``base_lr * exp(u)``, ``u``
      uniform in ``[-r, r]`` (0: always at ``base_lr``); a random start makes
      the policy learn to correct a wrong rate, not only a fixed schedule.
    sequential: run a batch of environments with ``lax.map`` (one after the
      other inside one program) instead of ``vmap``. On XLA:CPU a vmapped
      convolution over per-environment weights runs about 2x slower per
      environment-step than a single run, so ``lax.map`` is faster there;
      ``vmap`` is the choice on accelerators.
  """

  policy: PolicyConfig = PolicyConfig()
  base_lr: float = 0.05
  momentum: float = 0.9
  val_batch_size: int = 256
  reward: str = "val_loss"
  shaping: float = 1.0
  final_weight: float = 10.0
  final_val_examples: int = 1000
  divergence_cap: float = 3.0
  init_log_lr_range: float = 0.0
  sequential: bool = False

  def __post_init__(self):
    if self.reward not in ("val_loss", "train_loss"):
      raise ValueError(f"reward must be 'val_loss' or 'train_loss', got "
                       f"{self.reward!r}")
    if self.init_log_lr_range < 0:
      raise ValueError("init_log_lr_range must be >= 0")
    if self.policy.total_steps % self.policy.steps_per_action:
      raise ValueError("total_steps must be a multiple of steps_per_action")
    decision_bounds(self.policy)  # refuses a spacing that does not fit


class EnvState(NamedTuple):
  train: TrainState
  decision: jax.Array  # int32, decisions taken
  v_prev: jax.Array  # objective at the previous decision (capped)
  v0: jax.Array  # initial objective, the reward's normaliser


def batched(env: Any, fn_name: str, *args):
  """Applies ``env.<fn_name>`` over a leading batch axis of ``args``: vmapped,
  or with ``lax.map`` when ``env.sequential`` (see :class:`LREnvConfig`)."""
  fn = getattr(env, fn_name)
  if getattr(env, "sequential", False):
    return jax.lax.map(lambda a: fn(*a), args)
  return jax.vmap(fn)(*args)


def policy_signature(pcfg: Any) -> Any:
  """What environments trained together must agree on in their policy
  config: every field of a :class:`PolicyConfig` except the decision interval
  and the budget (``steps_per_action``, ``total_steps``), which may differ
  between tasks of different budgets taking the same number of decisions.
  Other configs are compared whole."""
  if isinstance(pcfg, PolicyConfig):
    return dataclasses.replace(pcfg, steps_per_action=1, total_steps=1)
  return pcfg


def env_cycle(env: Any) -> tuple[Any, ...]:
  """The trainers' environments as a non-empty tuple.

  :func:`lrmeta.rl.train_ppo` and :func:`lrmeta.rl.train_actor_critic` take
  one environment or a sequence of them (a family of training tasks, e.g. the
  same dataset with several label-noise rates, or the task-family shapes of
  :func:`lrmeta.rl.family.family_envs`) and run iteration ``i`` on
  ``envs[i % len(envs)]``. All must share the policy's observation and action
  spaces: ``obs_dim``, ``horizon`` and ``policy_cfg`` up to its decision
  interval and budget (:func:`policy_signature`), so that one actor reads
  every environment's observations and a frozen policy, rescaled to a budget
  by its number of decisions, acts as it did in training.
  """
  envs = tuple(env) if isinstance(env, (list, tuple)) else (env,)
  if not envs:
    raise ValueError("at least one environment is needed")
  first = (envs[0].obs_dim, envs[0].horizon,
           policy_signature(envs[0].policy_cfg))
  for e in envs[1:]:
    if (e.obs_dim, e.horizon, policy_signature(e.policy_cfg)) != first:
      raise ValueError("all training environments must share obs_dim, "
                       "horizon and policy_cfg (up to steps_per_action and "
                       "total_steps)")
  return envs


def _cap(v, v0, cap):
  v = jnp.where(jnp.isfinite(v), v, cap * v0)
  return jnp.minimum(v, cap * v0)


@dataclasses.dataclass(frozen=True)
class LREnv:
  """Learning-rate control of one task; every method is pure (vmappable)."""

  task: Task
  cfg: LREnvConfig = LREnvConfig()

  @property
  def policy_cfg(self) -> PolicyConfig:
    return self.cfg.policy

  @property
  def sequential(self) -> bool:
    return self.cfg.sequential

  @property
  def obs_dim(self) -> int:
    return self.cfg.policy.obs_dim

  @property
  def horizon(self) -> int:
    return self.cfg.policy.num_decisions

  def optimizer(self) -> optax.GradientTransformationExtraArgs:
    base = optax.inject_hyperparams(optax.sgd)(
        learning_rate=self.cfg.base_lr, momentum=self.cfg.momentum)
    return optax.chain(base, rl_features_scale(self.cfg.policy))

  def signals(self):
    return rl_signals(self.cfg.policy, self.cfg.val_batch_size)

  @staticmethod
  def controller_state(train: TrainState) -> RLPolicyState:
    return train.opt_state[1]

  @staticmethod
  def _with_controller(train: TrainState, rl: RLPolicyState) -> TrainState:
    return train._replace(opt_state=(train.opt_state[0], rl))

  def _objective(self, train: TrainState) -> jax.Array:
    f = self.controller_state(train).feats
    return f.val_last if self.cfg.reward == "val_loss" else f.train_ema

  def reset(self, key: jax.Array) -> tuple[EnvState, jax.Array]:
    """Starts a run from ``key`` (the same key as :func:`lrmeta.train.train`
    would use); returns the state and the first observation."""
    train = init_state(self.task, self.optimizer(), key)
    vb = self.task.val_batch(jax.random.fold_in(train.key, 2**31 - 1),
                             self.cfg.val_batch_size)
    v0 = self.task.loss(train.params, train.model_state, vb, train=False)[0]
    v0 = jnp.maximum(jnp.asarray(v0, jnp.float32), 1e-3)
    if self.cfg.init_log_lr_range:
      r = self.cfg.init_log_lr_range
      u = jax.random.uniform(jax.random.fold_in(key, 7), (), jnp.float32,
                             -r, r)
      train = self._with_controller(
          train, self.controller_state(train)._replace(log_scale=u))
    obs = observe(self.cfg.policy, self.controller_state(train), train.params)
    return EnvState(train, jnp.zeros((), jnp.int32), v0, v0), obs

  def _window_body(self, train: TrainState, decision: jax.Array):
    """All but the last step of window ``decision``: ``(train, {"lr",
    "train_loss"} per step)`` (``None``: a one-step window). Densify: a loop
    as long as the window, metrics right-aligned in arrays as long as the
    longest window (NaN before its first step)."""
    pcfg, opt = self.cfg.policy, self.optimizer()
    lengths = window_lengths(pcfg)
    longest = max(lengths)
    if longest == 1:
      return train, None
    if pcfg.decision_spacing == "uniform":
      train, m = run_steps(self.task, opt, train, longest - 1)
      return train, {k: m[k] for k in ("lr", "train_loss")}
    n = jnp.asarray(lengths)[jnp.minimum(decision, len(lengths) - 1)]
    nan = jnp.full((longest - 1,), jnp.nan, jnp.float32)

    def body(carry):
      i, tr, buf = carry
      tr, m = train_step(self.task, opt, tr)
      return i + 1, tr, {k: b.at[longest - n + i].set(m[k])
                         for k, b in buf.items()}

    _, train, buf = jax.lax.while_loop(
        lambda c: c[0] < n - 1, body,
        (jnp.zeros((), jnp.int32), train, {"lr": nan, "train_loss": nan}))
    return train, buf

  def step(self, state: EnvState, action: jax.Array
           ) -> tuple[EnvState, jax.Array, jax.Array, dict[str, jax.Array]]:
    """Applies ``action`` and trains one decision window
    (``steps_per_action`` steps, or this decision's window of
    ``decision_spacing="densify"``).

    Returns ``(state, observation, shaping reward, metrics)``.
    """
    pcfg, opt = self.cfg.policy, self.optimizer()
    train = state.train
    rl = decide(pcfg, self.controller_state(train), train.params,
                action_log_factor(pcfg, action))
    train = self._with_controller(train, rl)
    # The validation measurement happens only on the window's last step;
    # running it as a separate one-step scan keeps it out of the vmapped
    # loop body (a cond on a batched predicate would compute it every step).
    train, m1 = self._window_body(train, state.decision)
    train, m2 = run_steps(self.task, opt, train, 1, signals=self.signals())
    metrics = ({k: jnp.concatenate([m1[k], m2[k].astype(m1[k].dtype)])
                for k in m1} if m1 is not None else m2)
    v = _cap(self._objective(train), state.v0, self.cfg.divergence_cap)
    reward = self.cfg.shaping * (state.v_prev - v) / state.v0
    obs = observe(pcfg, self.controller_state(train), train.params)
    info = {"lr": metrics["lr"], "train_loss": metrics["train_loss"],
            "objective": v}
    return (EnvState(train, state.decision + 1, v, state.v0), obs, reward,
            info)

  def final_reward(self, state: EnvState) -> tuple[jax.Array, dict]:
    """Final-objective reward of a finished run, and its val loss/accuracy."""
    m = self.task.evaluate(state.train.params, state.train.model_state, "val",
                           self.cfg.final_val_examples)
    v = _cap(m["loss"], state.v0, self.cfg.divergence_cap)
    r = self.cfg.final_weight * (state.v0 - v) / state.v0
    return r, {"val_loss": m["loss"], "val_acc": m["accuracy"]}


def rollout(env: Any, actor_params: Any, keys: jax.Array, *,
            deterministic: bool = True, action_key: jax.Array | None = None
            ) -> tuple[Any, dict[str, jax.Array]]:
  """Runs ``len(keys)`` whole episodes of ``env`` under a policy, vmapped.

  Returns the final env states and a dict of ``[horizon, n_envs, ...]``
  trajectories (``obs``, ``action``, ``reward``, the env's ``info``) plus
  ``final_reward`` and the final metrics (``[n_envs]``). Jit it with ``env``
  and ``deterministic`` static (e.g. through ``functools.partial``).
  """
  pcfg = env.policy_cfg
  net = make_policy_net(pcfg)
  states, obs = batched(env, "reset", keys)
  if action_key is None:
    action_key = jax.random.key(0)

  def body(carry, t):
    s, o = carry
    out = net.apply(actor_params, o)
    a = policy_action(pcfg, out, jax.random.fold_in(action_key, t),
                      deterministic)
    s, o2, r, info = batched(env, "step", s, a)
    return (s, o2), {"obs": o, "action": a, "reward": r, **info}

  (states, _), traj = jax.lax.scan(body, (states, obs),
                                   jnp.arange(env.horizon))
  fr, fm = batched(env, "final_reward", states)
  traj["final_reward"] = fr
  traj.update({f"final_{k}": v for k, v in fm.items()})
  return states, traj


class QuadraticState(NamedTuple):
  log2_lr: jax.Array  # log2(lr * curvature), an integer-valued float
  t: jax.Array


@dataclasses.dataclass(frozen=True)
class QuadraticLREnv:
  """A toy environment with a known optimal policy, for tests.

  Gradient descent on the noiseless quadratic ``f(w) = h w^2 / 2``. Each
  step the policy multiplies the learning rate by 0.5, 1 or 2; the step then
  contracts ``w`` by ``|1 - lr h|`` and the reward is the log-decrease of
  ``f``, ``-2 log|1 - lr h|`` capped at ``reward_cap``. The episode starts at
  ``lr h = 2^j``, ``j`` uniform in ``[-start_range, start_range]``. The one
  best rate is ``lr = 1/h``: the optimal policy moves ``j`` towards 0 and
  then keeps it there. Observation: ``(j / 3, t / horizon)``.
  """

  horizon_steps: int = 8
  start_range: int = 3
  reward_cap: float = 5.0

  @property
  def policy_cfg(self) -> PolicyConfig:
    return PolicyConfig(steps_per_action=1, total_steps=self.horizon_steps,
                        action="discrete", factors=(0.5, 1.0, 2.0),
                        hidden=(32, 32))

  @property
  def obs_dim(self) -> int:
    return 2

  @property
  def horizon(self) -> int:
    return self.horizon_steps

  def _obs(self, s: QuadraticState) -> jax.Array:
    return jnp.stack([s.log2_lr / 3.0, s.t / self.horizon_steps])

  def reset(self, key: jax.Array) -> tuple[QuadraticState, jax.Array]:
    j = jax.random.randint(key, (), -self.start_range, self.start_range + 1)
    s = QuadraticState(j.astype(jnp.float32), jnp.zeros((), jnp.float32))
    return s, self._obs(s)

  def step(self, s: QuadraticState, action: jax.Array):
    step = jnp.asarray([-1.0, 0.0, 1.0])[action]
    j = jnp.clip(s.log2_lr + step, -6.0, 6.0)
    contraction = jnp.abs(1.0 - 2.0 ** j)
    r = jnp.minimum(-2.0 * jnp.log(jnp.maximum(contraction, 1e-12)),
                    self.reward_cap)
    s = QuadraticState(j, s.t + 1)
    return s, self._obs(s), r, {"log2_lr": j}

  def final_reward(self, s: QuadraticState):
    return jnp.zeros((), jnp.float32), {"log2_lr": s.log2_lr}
