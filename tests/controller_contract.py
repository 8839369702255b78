"""The contract every lrmeta controller passes (optax contrib/_common_test.py).

A controller family's test module calls :func:`check_controller_contract` with
a zero-argument factory; the checks are real properties that fail when a
controller breaks composition, retraces, changes its state's structure, or
hides the learning rate it applied.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.train import applied_learning_rate


def _params():
  return {"w": jnp.array([1.0, -2.0, 0.5]), "b": {"c": jnp.array([[0.3]])}}


def _loss(p):
  return 0.5 * (jnp.sum(p["w"] ** 2) + jnp.sum(3.0 * p["b"]["c"] ** 2))


def check_controller_contract(make_tx: Callable[[], optax.GradientTransformation],
                              *, steps: int = 5,
                              inject: Callable | None = None) -> None:
  """Runs the shared controller checks.

  Args:
    make_tx: builds the controller (alone or chained with its base).
    steps: update steps to run.
    inject: optional ``lambda: optax.inject_hyperparams(factory)(**kw)`` to
      check that the controller works under ``inject_hyperparams``.
  """
  tx = make_tx()
  assert isinstance(tx, optax.GradientTransformationExtraArgs), type(tx)
  params = _params()
  traces = {"n": 0}

  def step(p, s):
    traces["n"] += 1
    loss, g = jax.value_and_grad(_loss)(p)
    u, s = tx.update(g, s, p, value=loss)
    return optax.apply_updates(p, u), s, loss

  jstep = jax.jit(step)
  state = tx.init(params)
  shapes0 = jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), state)
  losses = []
  for _ in range(steps):
    params, state, loss = jstep(params, state)
    losses.append(float(loss))
  # No retrace after the first call; state structure, shapes, dtypes stable.
  assert traces["n"] == 1, f"retraced {traces['n']} times"
  chex.assert_trees_all_equal_structs(state, tx.init(params))
  shapes1 = jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), state)
  assert shapes0 == shapes1, (shapes0, shapes1)
  # Params stay finite and the applied learning rate is exposed and finite.
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
  lr = applied_learning_rate(state)
  assert np.isfinite(lr), "controller must expose a finite `learning_rate`"
  # Composes inside optax.chain (extra args reach it through the chain).
  chained = optax.chain(optax.clip_by_global_norm(10.0), make_tx())
  cs = chained.init(params)
  g = jax.grad(_loss)(params)
  u, cs = jax.jit(lambda g, s, p: chained.update(g, s, p, value=_loss(p)))(
      g, cs, params)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(u))
  if inject is not None:
    itx = inject()
    s = itx.init(params)
    u, s = jax.jit(lambda g, s, p: itx.update(g, s, p, value=_loss(p)))(
        g, s, params)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(u))


def check_clip_count(tx: optax.GradientTransformation, loss: Callable,
                     x: jax.Array, hits_bound: bool, max_lr: float = 1.0,
                     start: float = 0.1, steps: int = 10) -> None:
  """A controller that clips its rate to ``[min_lr, max_lr]`` counts the
  clipped steps in ``num_clipped`` (int32 scalar): above 0 when its rate was
  driven into ``max_lr`` (``hits_bound``), 0 when every rate stayed inside
  (then the rate stays within 10 % of ``start``)."""
  s = tx.init(x)

  def sgd_step(x, s):
    u, s = tx.update(jax.grad(loss)(x), s, x)
    return x + u, s
  step = jax.jit(sgd_step)
  top = 0.0
  for _ in range(steps):
    x, s = step(x, s)
    top = max(top, float(jnp.max(s.learning_rate)))
  assert s.num_clipped.dtype == jnp.int32 and s.num_clipped.shape == ()
  if hits_bound:
    assert int(s.num_clipped) > 0
    np.testing.assert_allclose(top, max_lr, rtol=1e-6)
  else:
    assert int(s.num_clipped) == 0
    assert start <= top < 1.1 * start
