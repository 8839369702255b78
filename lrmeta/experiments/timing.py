"""Wall-clock timing for the benchmark scripts (ratios within one run)."""

from __future__ import annotations

import time
from typing import Any, Callable

import jax


def best_time(fn: Callable[[Any], Any], x: Any, reps: int, *,
              has_aux: bool = False) -> float:
  """Best-of-``reps`` seconds of ``x = fn(x)`` after one warm-up call.

  The warm-up call absorbs compilation; taking the best repetition filters
  out interference from other processes on a shared machine. With
  ``has_aux`` the function returns ``(x, aux)`` and ``aux`` is dropped.
  """
  def call(x):
    out = fn(x)
    return out[0] if has_aux else out

  x = call(x)
  jax.block_until_ready(x)
  best = float("inf")
  for _ in range(max(1, reps)):
    t = time.perf_counter()
    x = call(x)
    jax.block_until_ready(x)
    best = min(best, time.perf_counter() - t)
  return best
