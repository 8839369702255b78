"""Policies as arrays: one layout for every family, so populations vmap.

A (multi-stage) policy packs into a :class:`PackedPolicy`: a policy id per
stage, the stage's parameters in a fixed slot vector shared by all families
(:data:`SLOTS`) and the stage start steps. Packed policies of different
families and different numbers of stages stack into one pytree, and
:func:`packed_schedule` evaluates any of them with a ``lax.switch`` on the
policy id, so a population of different policies trains as one vmapped
program.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from lrmeta.schedules import registry
from lrmeta.schedules.registry import POLICY_IDS, PolicyError

# Fixed parameter vector shared by every policy, so that candidates of
# different families stack into one array and one vmapped program.
SLOTS = ("k0", "k1", "k2", "gamma", "p", "l", "warmup", "m0", "m1", "m2",
         "m3")
SLOT = {name: i for i, name in enumerate(SLOTS)}
NUM_SLOTS = len(SLOTS)


class PackedPolicy(NamedTuple):
  """A (multi-stage) policy as arrays, so populations of them stack and vmap.

  Attributes:
    ids: ``int32[S]`` policy id of each stage (:data:`POLICY_IDS`).
    theta: ``float32[S, NUM_SLOTS]`` parameters in :data:`SLOTS` order.
    starts: ``float32[S]`` first step of each stage; unused trailing stages
      start at +inf.
  """

  ids: jax.Array
  theta: jax.Array
  starts: jax.Array


def _branch(d: registry.PolicyDef):
  """``(t, theta) -> lr`` of one policy, its warm-up included."""
  names = list(d.params)

  def run(t, theta):
    kw = {k: theta[SLOT[k]] for k in names}
    base = lambda s: d.fn(jnp.asarray(s, jnp.float32), **kw)
    return registry.warmup_ramp(base, theta[SLOT["warmup"]], t)
  return run


# Indexed by policy id.
_BRANCHES = [_branch(d) for d in registry.POLICIES.values()]


def pack(stages: Sequence[tuple[str, Mapping[str, Any]]],
         lengths: Sequence[int] = (), max_stages: int | None = None
         ) -> PackedPolicy:
  """Packs ``[(name, params), ...]`` and stage lengths into arrays.

  Args:
    stages: the policy of each stage.
    lengths: steps of every stage but the last.
    max_stages: pad to this many stages (so composites of different lengths
      stack); default ``len(stages)``.

  Returns:
    A :class:`PackedPolicy` with ``max_stages`` stages.

  Raises:
    PolicyError: a stage is malformed, or the numbers of stages and lengths
      do not fit.
  """
  s = len(stages)
  max_stages = s if max_stages is None else max_stages
  if s == 0 or s > max_stages:
    raise PolicyError(f"pack: need 1 to {max_stages} stages, got {s}")
  if len(lengths) != s - 1:
    raise PolicyError(
        f"pack: need {s - 1} stage lengths for {s} stages, got {len(lengths)}")
  ids, theta, starts = [], [], []
  start = 0.0
  for i, (name, params) in enumerate(stages):
    name = registry.canonical_name(name)
    p = registry.resolve_params(name, params)
    row = [0.0] * NUM_SLOTS
    for k, v in p.items():
      row[SLOT[k]] = v
    ids.append(POLICY_IDS[name])
    theta.append(row)
    starts.append(start)
    if i < s - 1:
      start += float(lengths[i])
  for _ in range(max_stages - s):
    ids.append(0)
    theta.append([0.0] * NUM_SLOTS)
    starts.append(math.inf)
  return PackedPolicy(jnp.asarray(ids, jnp.int32),
                      jnp.asarray(theta, jnp.float32),
                      jnp.asarray(starts, jnp.float32))


def stack_packed(policies: Sequence[PackedPolicy]) -> PackedPolicy:
  """Stacks packed policies (same ``max_stages``) along a new leading axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *policies)


def packed_schedule(packed: PackedPolicy) -> optax.Schedule:
  """The schedule of a packed policy; traceable and vmappable in ``packed``.

  The stage is the last one whose start is ``<= t``; its policy runs at
  ``t - start`` through a ``lax.switch`` on the policy id (under ``vmap`` this
  becomes a select over all branches: a few dozen scalar operations a step).

  Args:
    packed: one policy (no leading population axis).

  Returns:
    An ``optax.Schedule``.
  """
  def fn(t):
    t = jnp.asarray(t, jnp.float32)
    stage = jnp.sum(t >= packed.starts[1:]).astype(jnp.int32)
    local = t - packed.starts[stage]
    return jax.lax.switch(packed.ids[stage], _BRANCHES, local,
                          packed.theta[stage])
  return fn
