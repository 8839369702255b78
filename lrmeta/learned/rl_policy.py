"""The RL learning-rate policy as a learned controller.

A saved policy config holds ``policy`` (the fields of
:class:`~lrmeta.controllers.rl_policy.PolicyConfig` it was trained with),
``base_lr`` (the starting rate tuned in training's test stage), ``momentum``
of the SGD it drives and ``val_batch_size`` of its validation signal. Applied
to a run of another length, the decision interval scales so that the policy
takes as many decisions as in training (:func:`scaled_policy_config`).

References:
  Xu, Dai, Kemp, Metz, "Learning an Adaptive Learning Rate Schedule",
  arXiv:1909.09712, 2019. Xu, Qin, Wang, Liu, "Reinforcement Learning for
  Learning Rate Control", arXiv:1705.11159, 2017.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np
import optax

from lrmeta.controllers.rl_policy import (PolicyConfig, init_actor,
                                          keep_index, make_policy_net,
                                          observe, rl_lr_sgd, window_lengths)
from lrmeta.learned.base import load, register
from lrmeta.rl.env import rl_signals
from lrmeta.train.state import SignalsFn, init_state, run_steps

NAME = "rl_policy"


def policy_config(config: dict) -> PolicyConfig:
  """The :class:`PolicyConfig` a saved config describes."""
  return PolicyConfig(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in config["policy"].items()})


def policy_dict(pcfg: PolicyConfig) -> dict:
  """The JSON form of a :class:`PolicyConfig` (for a saved config)."""
  return {k: list(v) if isinstance(v, tuple) else v
          for k, v in dataclasses.asdict(pcfg).items()}


def scaled_policy_config(pcfg: PolicyConfig, num_steps: int) -> PolicyConfig:
  """The policy for a budget of ``num_steps``: same number of decisions."""
  n = max(1, num_steps // pcfg.num_decisions)
  return dataclasses.replace(pcfg, steps_per_action=n, total_steps=num_steps)


def initial_actor(pcfg: PolicyConfig, key: jax.Array, keep_bias: float):
  """Actor parameters whose initial policy favours keeping the rate: the
  logit of the factor closest to 1 gets ``keep_bias`` (discrete); the
  continuous actor's mean starts near 0 (factor 1) by construction."""
  actor = init_actor(pcfg, key)
  if pcfg.action == "discrete" and keep_bias:
    keep = keep_index(pcfg.factors)
    last = sorted(actor["params"], key=lambda n: int(n.split("_")[-1]))[-1]
    b = actor["params"][last]["bias"]
    actor["params"][last]["bias"] = b.at[keep].add(keep_bias)
  return actor


class RLPolicy:
  """The :class:`~lrmeta.learned.LearnedController` of the RL policy."""

  name = NAME

  def init(self, key: jax.Array, config: dict) -> Any:
    return initial_actor(policy_config(config), key,
                         config.get("keep_bias", 0.0))

  def optimizer(self, theta: Any, config: dict, num_steps: int, *,
                learning_rate: float | None = None,
                num_classes: int | None = None,
                deterministic: bool = True
                ) -> optax.GradientTransformationExtraArgs:
    """SGD with momentum whose rate the greedy (``deterministic``) policy
    sets; the base rate is ``learning_rate`` or the saved ``base_lr``. The
    policy reads class probabilities only through its features, so
    ``num_classes`` is not needed."""
    del num_classes
    lr = config["base_lr"] if learning_rate is None else learning_rate
    pcfg = scaled_policy_config(policy_config(config), num_steps)
    return rl_lr_sgd(theta, lr, pcfg, momentum=config["momentum"],
                     deterministic=deterministic)

  def signals(self, config: dict, num_steps: int) -> SignalsFn:
    """Minibatch losses every step and validation losses (and probe
    predictions for the ``xu2019`` features) once per decision."""
    pcfg = scaled_policy_config(policy_config(config), num_steps)
    return rl_signals(pcfg, config["val_batch_size"])


CONTROLLER = register(RLPolicy())


def policy_trace(ckpt_dir: str, task, num_steps: int, key: jax.Array, *,
                 learning_rate: float | None = None) -> dict[str, np.ndarray]:
  """What a saved policy sees and does on ``task``, decision by decision.

  Trains one run of ``num_steps`` under the frozen policy and, after each
  decision window, records the observation (``obs``, ``[decisions,
  features]``, names from ``lrmeta.controllers.rl_policy.feature_names``), the
  actor's output (``probs`` over the factors for a discrete policy, ``mean``
  log-factor for a continuous one) and the rate applied during the window
  (``lr``).
  """
  saved = load(ckpt_dir)
  if saved.kind != NAME:
    raise ValueError(f"{ckpt_dir} holds a {saved.kind!r} controller, not "
                     f"{NAME!r}")
  actor, config = saved.theta, saved.config
  pcfg = scaled_policy_config(policy_config(config), num_steps)
  opt = CONTROLLER.optimizer(actor, config, num_steps,
                             learning_rate=learning_rate)
  signals = CONTROLLER.signals(config, num_steps)
  net = make_policy_net(pcfg)

  @functools.partial(jax.jit, static_argnums=1)
  def window(state, n):
    state, m = run_steps(task, opt, state, n, signals=signals)
    obs = observe(pcfg, state.opt_state[1], state.params)
    out = net.apply(actor, obs)
    act = (jax.nn.softmax(out) if pcfg.action == "discrete"
           else out[0][..., 0])
    return state, obs, act, m["lr"].mean()

  state = init_state(task, opt, key)
  rows = []
  n = pcfg.steps_per_action
  lengths = (window_lengths(pcfg) if pcfg.decision_spacing == "densify"
             else (n,) * (num_steps // n))
  for n in lengths:
    state, obs, act, lr = window(state, n)
    rows.append(jax.device_get((obs, act, lr)))
  obs, act, lr = (np.stack(r) for r in zip(*rows))
  return {"obs": obs, "probs" if pcfg.action == "discrete" else "mean": act,
          "lr": lr, "factors": np.asarray(pcfg.factors)}
