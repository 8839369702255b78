"""Extra arguments reach every controller through optax's wrappers.

Each lrmeta controller runs through lrmeta's train step under
``optax.MultiSteps`` (the object and its ``gradient_transformation()``),
``optax.apply_if_finite``, ``optax.inject_hyperparams``, a chain behind
``clip_by_global_norm`` and a chain holding a ``MultiSteps``. A probe chained
right after the controller records the ``value=`` it is handed; the
controllers that read the loss must show it in their own state too.
"""

from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.controllers import (HypergradientState, MLRSNetState,
                                PolicyConfig, RLPolicyState,
                                SelfAdaptiveState, hd_adam, hd_sgd, init_actor,
                                init_mlr_snet_params, mlr_snet_sgd, rl_lr_sgd,
                                self_adaptive_sgd)
from lrmeta.schedules import plateau_sgd
from lrmeta.tasks import make_task
from lrmeta.train import (as_extra_args, init_state, loss_signal,
                          run_steps, with_validation_loss)

STEPS = 4
EVERY_K = 2  # MultiSteps: updates are applied at steps 1 and 3


@pytest.fixture(scope="module")
def mlp_task(fmnist_small):
  return make_task("fashion_mnist", "mlp", batch_size=16, data=fmnist_small,
                   model_kwargs={"hidden": (16,)})


@functools.cache
def _rl_parts():
  cfg = PolicyConfig(steps_per_action=2, total_steps=STEPS, hidden=(8,))
  return init_actor(cfg, jax.random.key(1)), cfg


# name -> (factory with its static configuration, numeric keyword arguments
# that optax.inject_hyperparams may inject)
def _controller(name):
  if name == "hd_sgd":
    return hd_sgd, {"initial_learning_rate": 0.05, "hyper_lr": 1e-3}
  if name == "hd_adam":
    return hd_adam, {"initial_learning_rate": 1e-3, "hyper_lr": 1e-7}
  if name == "self_adaptive_sgd":
    return (functools.partial(self_adaptive_sgd, momentum=0.9),
            {"initial_learning_rate": 0.05, "hyper_lr": 1e-2})
  if name == "mlr_snet_sgd":
    theta = init_mlr_snet_params(jax.random.key(0))
    return functools.partial(mlr_snet_sgd, theta), {"momentum": 0.9}
  if name == "rl_lr_sgd":
    actor, cfg = _rl_parts()
    return (functools.partial(rl_lr_sgd, actor, cfg=cfg),
            {"learning_rate": 0.05})
  if name == "plateau_sgd":
    # optax's reduce_on_plateau checks its factor in Python: not injectable.
    return (functools.partial(plateau_sgd, patience=1, factor=0.5),
            {"learning_rate": 0.05})
  raise ValueError(name)


CONTROLLERS = ("hd_sgd", "hd_adam", "self_adaptive_sgd", "mlr_snet_sgd",
               "rl_lr_sgd", "plateau_sgd")


class ProbeState(NamedTuple):
  value: jax.Array  # last `value=` received
  calls: jax.Array  # updates applied


def probe() -> optax.GradientTransformationExtraArgs:
  """Passes updates through and records the ``value=`` it receives."""
  def init(params):
    del params
    return ProbeState(jnp.asarray(jnp.nan, jnp.float32),
                      jnp.zeros((), jnp.int32))

  def update(updates, state, params=None, *, value=None, **extra):
    del params, extra
    if value is None:
      raise TypeError("probe: no `value=` arrived")
    return updates, ProbeState(jnp.asarray(value, jnp.float32),
                               state.calls + 1)
  return optax.GradientTransformationExtraArgs(init, update)


def _probed(factory, kwargs):
  return optax.chain(factory(**kwargs), probe())


def _wrapped(wrapper, factory, kwargs):
  if wrapper == "multi_steps":
    return optax.MultiSteps(_probed(factory, kwargs), every_k_schedule=EVERY_K)
  if wrapper == "multi_steps_transformation":
    return optax.MultiSteps(_probed(factory, kwargs),
                            every_k_schedule=EVERY_K).gradient_transformation()
  if wrapper == "apply_if_finite":
    return optax.apply_if_finite(_probed(factory, kwargs), 3)
  if wrapper == "inject_hyperparams":
    def probed_factory(**kw):
      return _probed(factory, kw)
    # inject_hyperparams reads the factory's parameters from its signature.
    # Only the numeric arguments given are injected; the others stay static.
    sig = inspect.signature(factory)
    probed_factory.__signature__ = sig
    static = tuple(k for k in sig.parameters if k not in kwargs)
    return optax.inject_hyperparams(probed_factory, static_args=static)(
        **kwargs)
  if wrapper == "chain_clip":
    return optax.chain(optax.clip_by_global_norm(1.0),
                       _probed(factory, kwargs))
  if wrapper == "chain_multi_steps":
    return optax.chain(optax.clip_by_global_norm(1.0), as_extra_args(
        optax.MultiSteps(_probed(factory, kwargs), every_k_schedule=EVERY_K)))
  raise ValueError(wrapper)


WRAPPERS = ("multi_steps", "apply_if_finite", "inject_hyperparams",
            "chain_clip")
# Forms that reach the controller through the same path as MultiSteps; run
# with the controllers that raise without the loss.
MORE_WRAPPERS = ("multi_steps_transformation", "chain_multi_steps")


def _find(tree, cls):
  nodes = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, cls))
  found = [x for x in nodes if isinstance(x, cls)]
  assert len(found) == 1, (cls, len(found))
  return found[0]


def _run(task, opt, signals=loss_signal):
  # Initialisation and steps compiled together: one compilation per case.
  state, m = jax.jit(lambda k: run_steps(
      task, opt, init_state(task, opt, k), STEPS, signals=signals))(
          jax.random.key(0))
  return state, jax.device_get(m)


@pytest.mark.parametrize("name,wrapper", [
    *[(n, w) for n in CONTROLLERS for w in WRAPPERS],
    *[(n, w) for n in ("mlr_snet_sgd", "plateau_sgd") for w in MORE_WRAPPERS]])
def test_loss_reaches_wrapped_controller(mlp_task, name, wrapper):
  factory, kwargs = _controller(name)
  opt = _wrapped(wrapper, factory, kwargs)
  state, m = _run(mlp_task, opt)
  losses = m["train_loss"]
  assert np.isfinite(losses).all() and m["finite"].all()
  accumulating = "multi_steps" in wrapper
  applied = STEPS // EVERY_K if accumulating else STEPS

  # The probe right after the controller saw the loss of the last applied
  # step, once per applied update.
  p = _find(state.opt_state, ProbeState)
  assert int(p.calls) == applied
  assert float(p.value) == losses[-1]

  # The controllers that read the loss hold it in their own state.
  if name == "rl_lr_sgd":
    feats = _find(state.opt_state, RLPolicyState).feats
    first_seen = losses[EVERY_K - 1] if accumulating else losses[0]
    assert float(feats.loss0) == first_seen
  elif name == "mlr_snet_sgd":
    s = _find(state.opt_state, MLRSNetState)
    assert float(s.gamma) > 0  # computed from the first loss (-1 before)
    assert int(s.count) == applied
  elif name == "plateau_sgd":
    s = _find(state.opt_state, optax.contrib.ReduceLROnPlateauState)
    assert float(s.best_value) in set(losses.tolist())
  else:
    cls = HypergradientState if name.startswith("hd") else SelfAdaptiveState
    assert int(_find(state.opt_state, cls).count) == applied
  # The rate stays readable through every wrapper.
  assert np.isfinite(m["lr"]).all() and (m["lr"][-1] > 0)


@pytest.mark.parametrize("name", ["rl_lr_sgd", "plateau_sgd"])
def test_injected_rate_is_not_counted_twice(mlp_task, name):
  """inject_hyperparams(controller) records the same rate as the controller.

  Both controllers take ``learning_rate`` and record a rate that includes it.
  """
  factory, kwargs = _controller(name)
  _, plain = _run(mlp_task, _probed(factory, kwargs))
  _, injected = _run(mlp_task, _wrapped("inject_hyperparams", factory, kwargs))
  np.testing.assert_allclose(injected["lr"], plain["lr"], rtol=1e-6)
  np.testing.assert_allclose(injected["train_loss"], plain["train_loss"],
                             rtol=1e-6)


def test_validation_signal_reaches_policy_under_multi_steps(mlp_task):
  """The other signals travel the same way as `value=` (here val_value)."""
  factory, kwargs = _controller("rl_lr_sgd")
  opt = optax.MultiSteps(factory(**kwargs), every_k_schedule=EVERY_K)
  state, _ = _run(mlp_task, opt, with_validation_loss(every=1))
  assert np.isfinite(float(_find(state.opt_state, RLPolicyState)
                           .feats.val_last))


def test_as_extra_args_forwards_what_update_accepts():
  params = {"w": jnp.ones(2)}
  seen = {}

  def named(updates, state, params=None, *, value=None):
    seen["named"] = value
    return updates, state

  def varkw(updates, state, params=None, **extra):
    seen["varkw"] = extra
    return updates, state

  def bare(updates, state, params=None):
    seen["bare"] = True
    return updates, state

  init = lambda p: optax.EmptyState()
  for update in (named, varkw, bare):
    tx = as_extra_args(optax.GradientTransformation(init, update))
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    tx.update(params, tx.init(params), params, value=1.5, val_value=2.5)
  assert seen == {"named": 1.5, "varkw": {"value": 1.5, "val_value": 2.5},
                  "bare": True}
  ms = optax.MultiSteps(optax.sgd(0.1), every_k_schedule=2)
  assert as_extra_args(ms).update == ms.update
  ctl = hd_sgd(0.1)
  assert as_extra_args(ctl) is ctl
