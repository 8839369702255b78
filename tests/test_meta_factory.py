"""The estimator factory and the Estimator protocol the outer loop takes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.meta import (ESTIMATORS, PES, AntitheticES, Estimator,
                         EstimatorState, MetaTrainer, OnlineLookahead,
                         TruncatedBackprop, make_estimator)
from test_meta_estimators import THETA0, Toy

PROBLEM = Toy()
ARGS = dict(horizon=12, window=3, num_tasks=5, every=4, num_pairs=6,
            sigma=0.2)

# What each name must build from ARGS, field by field.
EXPECTED = {
    "truncated": TruncatedBackprop(PROBLEM, horizon=12, window=3,
                                   num_tasks=5),
    "unrolled": TruncatedBackprop(PROBLEM, horizon=12, window=12,
                                  num_tasks=5),
    "lookahead": TruncatedBackprop(PROBLEM, horizon=12, window=1, skip=3,
                                   num_tasks=5),
    "online_lookahead": OnlineLookahead(PROBLEM, horizon=12, num_tasks=5,
                                        every=4),
    "es": AntitheticES(PROBLEM, horizon=12, window=3, num_tasks=5,
                       num_pairs=6, sigma=0.2),
    "pes": PES(PROBLEM, horizon=12, window=3, num_tasks=5, num_pairs=6,
               sigma=0.2),
}


def test_every_name_has_an_expectation():
  assert set(EXPECTED) == set(ESTIMATORS)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_factory_builds_the_named_estimator(name):
  est = make_estimator(name, PROBLEM, **ARGS)
  want = EXPECTED[name]
  assert type(est) is type(want)
  assert est == want  # dataclass equality: every field
  assert isinstance(est, Estimator)
  assert est.problem is PROBLEM
  assert (est.horizon, est.num_tasks) == (12, 5)
  if name in ("truncated", "es", "pes"):
    assert est.window == 3
  if name in ("es", "pes"):
    assert (est.num_pairs, est.sigma) == (6, 0.2)
  if name == "unrolled":
    assert (est.window, est.skip, est.name) == (12, 0, "unrolled")
  if name == "lookahead":
    assert (est.window, est.skip, est.steps_per_call) == (1, 3, 4)
  if name == "online_lookahead":
    assert (est.every, est.steps_per_epoch, est.steps_per_call) == (4, None, 1)


@pytest.mark.parametrize("name,cls", [("es", AntitheticES), ("pes", PES),
                                      ("truncated", TruncatedBackprop)])
def test_factory_defaults_are_the_estimator_defaults(name, cls):
  """Left out, window is the horizon and num_pairs, sigma, num_tasks are
  the classes' own defaults."""
  assert make_estimator(name, PROBLEM, horizon=4) == cls(PROBLEM, horizon=4)


def test_unknown_estimator_is_named_with_the_known_ones():
  with pytest.raises(ValueError, match="'nope'") as err:
    make_estimator("nope", PROBLEM, horizon=4, window=2)
  for name in ESTIMATORS:
    assert name in str(err.value)


class _ConstantGradient:
  """A minimal estimator outside the class hierarchy: gradient 1 everywhere."""

  def init(self, theta, key):
    return EstimatorState((), jnp.stack([key]), jnp.zeros((1,), jnp.int32),
                          (), jnp.zeros((1,), bool))

  def estimate(self, theta, state, key):
    del key
    grad = jax.tree.map(jnp.ones_like, theta)
    return grad, state, {"meta_loss": jnp.zeros(()),
                         "diverged": jnp.zeros((), jnp.int32),
                         "num_ok": jnp.ones((), jnp.int32)}


def test_outer_loop_takes_any_estimator_of_the_protocol():
  est = _ConstantGradient()
  assert isinstance(est, Estimator)
  trainer = MetaTrainer([est], meta_optimizer=optax.sgd(0.1), clip_norm=None)
  state = trainer.init(THETA0, jax.random.key(0))
  new, m = jax.jit(trainer.step)(state)
  assert not bool(m["skipped"])
  for a, b in zip(jax.tree.leaves(new.theta), jax.tree.leaves(THETA0)):
    np.testing.assert_allclose(a, b - 0.1, rtol=1e-6)


def test_outer_loop_rejects_a_non_estimator():
  class NoEstimate:
    def init(self, theta, key):
      return ()

  assert not isinstance(NoEstimate(), Estimator)
  with pytest.raises(TypeError, match="NoEstimate is not an Estimator"):
    MetaTrainer([NoEstimate()])
