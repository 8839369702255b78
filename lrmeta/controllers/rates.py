"""Rate bounds and the guard shared by the HD and self-adaptive controllers.

Both controllers keep every rate in ``[min_lr, max_lr]``; the defaults are
those of the public code of Baydin et al. (2018).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_MIN_LR = 1e-8
DEFAULT_MAX_LR = 10.0


def clip_rate(proposed: jax.Array, previous: jax.Array, min_lr: float,
              max_lr: float) -> tuple[jax.Array, jax.Array]:
  """The guard: NaN holds the previous rate, the rest is clipped to bounds.

  Returns:
    ``(rate, clipped)``: the guarded rate and a bool array, true where the
    proposed rate was NaN, infinite, below ``min_lr`` or above ``max_lr``.
  """
  held = jnp.where(jnp.isnan(proposed), previous, proposed)
  rate = jnp.clip(held, min_lr, max_lr)
  clipped = jnp.isnan(proposed) | (rate != proposed)
  return rate, clipped


def count_clipped(num_clipped: jax.Array, clipped: jax.Array) -> jax.Array:
  """Adds one to the int32 step count ``num_clipped`` if any rate clipped."""
  return num_clipped + jnp.any(clipped).astype(jnp.int32)
