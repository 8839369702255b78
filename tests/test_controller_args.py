"""Every controller factory rejects a static argument out of range where it
is passed, naming the factory, the argument and the rule; traced values pass
unchecked."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.controllers import hypergradient as hd
from lrmeta.controllers import rl_policy as rp
from lrmeta.controllers import self_adaptive as sa
# The package re-exports the function mlr_snet under its module's name.
from lrmeta.controllers.mlr_snet import (init_mlr_snet_params, mlr_snet,
                                         mlr_snet_sgd)

_THETA = init_mlr_snet_params(jax.random.key(0), hidden=4)
_CFG = rp.PolicyConfig(hidden=(4,))
_ACTOR = rp.init_actor(_CFG, jax.random.key(0))


def _sbh(**kw):
  return hd.scale_by_hypergradient(optax.sgd(1.0), **kw)


def _sbsa(**kw):
  return sa.scale_by_self_adaptive_lr(optax.sgd(1.0), **kw)


def _rl_lr_sgd(**kw):
  kw.setdefault("learning_rate", 0.1)
  return rp.rl_lr_sgd(_ACTOR, cfg=_CFG, **kw)


def _mlr_snet(**kw):
  return mlr_snet(_THETA, **kw)


def _mlr_snet_sgd(**kw):
  return mlr_snet_sgd(_THETA, **kw)


# (factory name in the message, factory, bad kwargs, text the message has)
_HD_COMMON = [
    ({"initial_learning_rate": -1.0}, "initial_learning_rate must be > 0"),
    ({"initial_learning_rate": 0.0}, "initial_learning_rate must be > 0"),
    ({"initial_learning_rate": float("nan")},
     "initial_learning_rate must be > 0"),
    ({"initial_learning_rate": np.float32(-0.5)},
     "initial_learning_rate must be > 0"),
    ({"initial_learning_rate": 1e3},
     "initial_learning_rate=1000.0 is above max_lr=10.0"),
    ({"initial_learning_rate": 1e-9}, "initial_learning_rate=1e-09 is below "
                                      "min_lr=1e-08"),
    ({"hyper_lr": -1e-3}, "hyper_lr must be >= 0"),
    ({"hyper_lr": float("inf")}, "hyper_lr must be >= 0"),
    ({"rule": "mult"}, "rule must be one of ('additive', 'multiplicative')"),
    ({"granularity": "layer"},
     "granularity must be one of ('global', 'per_layer', 'per_element')"),
    ({"min_lr": -1.0}, "min_lr must be >= 0"),
    ({"max_lr": 0.0}, "max_lr must be > 0"),
    ({"min_lr": 1.0, "max_lr": 0.5}, "max_lr must be > min_lr"),
]
_SA_COMMON = [
    ({"initial_learning_rate": -1.0}, "initial_learning_rate must be > 0"),
    ({"initial_learning_rate": 100.0},
     "initial_learning_rate=100.0 is above max_lr=10.0"),
    ({"hyper_lr": -0.1}, "hyper_lr must be >= 0"),
    ({"structure": "rank2"},
     "structure must be one of ('rank1', 'layer', 'element')"),
    ({"hyper_b1": 1.0}, "hyper_b1 must be in [0, 1)"),
    ({"hyper_b2": -0.5}, "hyper_b2 must be in [0, 1)"),
    ({"min_lr": 0.0}, "min_lr must be > 0"),
    ({"min_lr": 1.0, "max_lr": 0.5}, "max_lr must be > min_lr"),
]

CASES = (
    [("hd_sgd", hd.hd_sgd, kw, msg) for kw, msg in _HD_COMMON]
    + [("hd_sgd", hd.hd_sgd, {"momentum": 1.0}, "momentum must be in [0, 1)"),
       ("hd_sgd", hd.hd_sgd, {"momentum": -0.1},
        "momentum must be in [0, 1)")]
    + [("hd_sgdn", hd.hd_sgdn, kw, msg) for kw, msg in _HD_COMMON]
    + [("hd_sgdn", hd.hd_sgdn, {"momentum": 1.5},
        "momentum must be in [0, 1)")]
    + [("hd_adam", hd.hd_adam, kw, msg) for kw, msg in _HD_COMMON]
    + [("hd_adam", hd.hd_adam, {"b1": 1.0}, "b1 must be in [0, 1)"),
       ("hd_adam", hd.hd_adam, {"b2": -0.1}, "b2 must be in [0, 1)"),
       ("hd_adam", hd.hd_adam, {"eps": -1e-8}, "eps must be >= 0")]
    + [("scale_by_hypergradient", _sbh, kw, msg) for kw, msg in _HD_COMMON]
    + [("self_adaptive_sgd", sa.self_adaptive_sgd, kw, msg)
       for kw, msg in _SA_COMMON]
    + [("self_adaptive_sgd", sa.self_adaptive_sgd, {"momentum": 1.0},
        "momentum must be in [0, 1)")]
    + [("self_adaptive_adam", sa.self_adaptive_adam, kw, msg)
       for kw, msg in _SA_COMMON]
    + [("self_adaptive_adam", sa.self_adaptive_adam, {"b1": -0.1},
        "b1 must be in [0, 1)"),
       ("self_adaptive_adam", sa.self_adaptive_adam, {"eps": -1.0},
        "eps must be >= 0")]
    + [("scale_by_self_adaptive_lr", _sbsa, kw, msg) for kw, msg in _SA_COMMON]
    + [("scale_by_self_adaptive_lr", _sbsa, {"hyper_eps": -1.0},
        "hyper_eps must be >= 0")]
    + [("mlr_snet", _mlr_snet, {"num_classes": 0}, "num_classes must be > 0"),
       ("mlr_snet", _mlr_snet, {"gamma": -0.1}, "gamma must be > 0"),
       ("mlr_snet", _mlr_snet, {"switch_steps": (3, 2)},
        "switch_steps must be increasing positive integers"),
       ("mlr_snet", _mlr_snet, {"switch_steps": (0,)},
        "switch_steps must be increasing positive integers"),
       ("mlr_snet_sgd", _mlr_snet_sgd, {"momentum": 1.0},
        "momentum must be in [0, 1)"),
       ("mlr_snet_sgd", _mlr_snet_sgd, {"weight_decay": -1e-4},
        "weight_decay must be >= 0"),
       ("mlr_snet_sgd", _mlr_snet_sgd, {"num_classes": -1},
        "num_classes must be > 0"),
       ("init_mlr_snet_params", init_mlr_snet_params,
        {"key": jax.random.key(0), "hidden": 0},
        "hidden must be an integer >= 1"),
       ("rl_lr_sgd", _rl_lr_sgd, {"learning_rate": 0.0},
        "learning_rate must be > 0"),
       ("rl_lr_sgd", _rl_lr_sgd, {"momentum": 1.0},
        "momentum must be in [0, 1)")]
    + [("PolicyConfig", rp.PolicyConfig, kw, msg) for kw, msg in [
        ({"steps_per_action": 0}, "steps_per_action must be an integer >= 1"),
        ({"total_steps": -5}, "total_steps must be an integer >= 1"),
        ({"features": "xu2017"}, "features must be one of ('basic', 'xu2019', 'scale_free')"),
        ({"action": "gaussian"},
         "action must be one of ('discrete', 'continuous')"),
        ({"factors": (0.5, -1.0)}, "factors must be positive numbers"),
        ({"max_log_factor": 0.0}, "max_log_factor must be > 0"),
        ({"min_log_scale": 3.0, "max_log_scale": 3.0},
         "max_log_scale must be > min_log_scale"),
        ({"ema": 1.0}, "ema must be in [0, 1)"),
        ({"probe_size": 0}, "probe_size must be an integer >= 1"),
        ({"hidden": (32, 0)}, "hidden must be an integer >= 1")]]
    + [("rl_lr_policy", rp.rl_lr_policy,
        {"params": _ACTOR, "steps_per_action": 0},
        "PolicyConfig: steps_per_action")]
)


def _case_id(case):
  fn, _, kw, _ = case
  return fn + "-" + "-".join(f"{k}={v!r}" for k, v in kw.items()
                             if k not in ("key", "params"))


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_static_argument_raises_naming_it(case):
  fn, factory, kwargs, text = case
  with pytest.raises(ValueError) as info:
    factory(**kwargs)
  msg = str(info.value)
  if fn != "rl_lr_policy":  # the config check names PolicyConfig
    assert msg.startswith(f"{fn}: "), msg
  assert text in msg, msg


def test_hd_start_above_max_lr_is_an_error_not_a_clip():
  with pytest.raises(ValueError, match=re.escape(
      "hd_sgd: initial_learning_rate=1000.0 is above max_lr=10.0")):
    hd.hd_sgd(1e3)


@pytest.mark.parametrize("make", [
    lambda: hd.hd_sgd(10.0, 0.0, momentum=0.0, min_lr=0.0),  # bounds inclusive
    lambda: hd.hd_adam(1e-8, 0.0, b1=0.0, b2=0.0, eps=0.0),
    lambda: sa.self_adaptive_sgd(10.0, 0.0, momentum=0.0, hyper_b1=0.0,
                                 hyper_b2=0.0),
    lambda: mlr_snet_sgd(_THETA, 0.0, weight_decay=0.0, gamma=0.5,
                            switch_steps=()),
    lambda: rp.rl_lr_sgd(_ACTOR, 1e-4, _CFG, momentum=0.0),
])
def test_edge_values_in_range_are_accepted(make):
  tx = make()
  p = {"w": jnp.ones(3)}
  assert tx.init(p) is not None


def test_traced_values_are_not_checked():
  """Under jit, vmap and inject_hyperparams the factory sees tracers or
  device arrays; it builds without checking them (and HD clips the start)."""
  p = {"w": jnp.ones(3)}

  @jax.jit
  def start(lr0):
    return hd.hd_sgd(lr0, 1e-3).init(p).learning_rate

  assert float(start(1e3)) == pytest.approx(hd.DEFAULT_MAX_LR)
  rates = jax.vmap(lambda lr0: sa.self_adaptive_sgd(lr0).init(p).learning_rate
                   )(jnp.array([0.01, 0.1]))
  assert rates.shape == (2, 1)
  for tx in (optax.inject_hyperparams(hd.hd_sgd)(initial_learning_rate=0.1),
             optax.inject_hyperparams(sa.self_adaptive_adam)(1e-3),
             optax.inject_hyperparams(mlr_snet_sgd)(theta=_THETA,
                                                       momentum=0.9)):
    state = tx.init(p)
    _, state = tx.update(p, state, p, value=jnp.asarray(1.0))
    assert jax.tree.leaves(state)
