"""The ES noise draw: standard normal perturbations shaped like ``theta``.

One definition for every evolution-strategies estimator
(:class:`lrmeta.meta.es.AntitheticES` and :class:`~lrmeta.meta.es.PES`
inside a traced window, :class:`lrmeta.meta.family_es.FamilyES` on the host):
leaf ``j`` of ``theta`` draws from the ``j``-th key of
``jax.random.split(key, num_leaves)``, ``n`` draws stacked on axis 0.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Theta = Any


def normal_like(key: jax.Array, theta: Theta, n: int, *,
                leaf_dtype: bool = True) -> Theta:
  """``n`` standard normal draws shaped like ``theta``, stacked on axis 0.

  Args:
    key: PRNG key of the draw.
    theta: a pytree of arrays.
    n: draws per leaf.
    leaf_dtype: draw in each leaf's dtype (``False``: JAX's default float
      dtype).

  Returns:
    A pytree like ``theta`` with leaves ``[n, *leaf.shape]`` (traceable).
  """
  leaves, treedef = jax.tree.flatten(theta)
  keys = jax.random.split(key, len(leaves))
  if leaf_dtype:
    draws = [jax.random.normal(k, (n,) + jnp.shape(x), jnp.result_type(x))
             for k, x in zip(keys, leaves)]
  else:
    draws = [jax.random.normal(k, (n,) + np.shape(x))
             for k, x in zip(keys, leaves)]
  return treedef.unflatten(draws)


def host_normal_like(key: jax.Array, theta: Theta, n: int) -> Theta:
  """:func:`normal_like` in JAX's default float dtype, as float64 numpy
  (for estimators that combine fitnesses on the host)."""
  return jax.tree.map(lambda x: np.asarray(x, np.float64),
                      normal_like(key, theta, n, leaf_dtype=False))


__all__ = ["host_normal_like", "normal_like"]
