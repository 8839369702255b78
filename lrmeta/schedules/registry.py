r"""The named policies: registry, parameter checks, Optax schedules, warm-up.

A *policy* is a named LR function with numeric parameters. All 34 functions of
LRBench's public code are registered under LRBench's own (lower-cased) names,
with a few policies LRBench lacks (``linear``, ``wsd`` (warm-up-stable-decay:
constant, then linear decay to 0 over the last fraction ``p`` of ``l``
steps), ``onecycle``, ``sgdr`` with a period multiplier), a linear warm-up in front of any policy (the ``warmup``
field) and multi-stage composition (:func:`compose`).

Conventions shared by every cyclic and restart policy (see
:mod:`lrmeta.schedules.shapes` for the closed forms):

* ``t`` is the step *within the policy's own stage* (a composite evaluates each
  stage at ``t - stage_start``, as LRBench's ``piecewiseLR`` does).
* ``k0`` is the low end of the range and ``k1`` the high end.
* ``l`` is the **half period** of the cyclic policies: the number of steps
  from one extreme to the other, a full cycle being ``2 l`` steps. This is
  what LRBench's code computes for the triangle, sine *and* cosine families
  (its paper's Table I writes the cosine with a full period of ``l``; the code
  and its maintainers use the half period), so ``cos`` falls from ``k1`` at
  ``t = 0`` to ``k0`` at ``t = l`` and is back at ``k1`` at ``t = 2 l``, in
  phase with ``dtri`` and ``dsin``.
* The restart policies ``rsw``/``sinrsw``/``cosrsw`` restart every ``l``
  steps at (just below) ``k1`` and anneal to ``k0``, with the value at
  ``t = 0, l, 2l, ...`` equal to ``k0`` (LRBench's formula); ``sgdr`` is the
  usual SGDR, which starts each cycle at ``k1``.

Where Optax already computes the same function (``fix``, ``step``, ``nstep``,
``exp``, ``poly``, ``linear``, ``onecycle``, warm-up and composition)
:func:`policy` returns Optax's schedule when the parameters are concrete
numbers; with traced parameters (a vmapped population) it returns the closed
form, because Optax validates those arguments with Python ``if`` statements.

References:
  Wu & Liu, "Selecting and Composing Learning Rate Policies for Deep Neural
  Networks", ACM TIST 14(2), 2023 (LRBench). Wu et al., "Demystifying Learning
  Rate Policies for High Accuracy Training of Deep Neural Networks", IEEE
  BigData 2019. Goyal et al., "Accurate, Large Minibatch SGD", 2017 (linear
  warm-up).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from lrmeta.schedules import shapes

MAX_MILESTONES = 4  # nstep: up to four decay steps (fields m0..m3)
REQUIRED = object()


class PolicyError(ValueError):
  """A policy name or field is unknown, missing or out of range."""


@dataclasses.dataclass(frozen=True)
class PolicyDef:
  """A named LR function.

  Attributes:
    name: canonical (LRBench) name.
    family: "basic", "cyclic", "restart" or "extra" (not in LRBench).
    fn: closed form ``fn(t, **params)`` in ``jnp``.
    params: ``{field: default}``; :data:`REQUIRED` marks required fields.
    formula: the closed form, for docs and tables.
    optax_fn: builds Optax's identical schedule from concrete parameters, or
      returns None when Optax has no identical one for these values.
  """

  name: str
  family: str
  fn: Callable[..., jax.Array]
  params: Mapping[str, Any]
  formula: str
  optax_fn: Callable[..., optax.Schedule | None] | None = None


def _optax_onecycle(k0, k1, k2, l, p):
  if l <= 0 or k0 <= 0 or k2 <= 0 or float(p * l) != int(p * l):
    return None  # optax rounds the peak step down to an integer
  return optax.cosine_onecycle_schedule(
      int(l), k1, pct_start=p, div_factor=k1 / k0, final_div_factor=k0 / k2)


def _optax_nstep(k0, gamma, m0, m1, m2, m3):
  bounds = [m for m in (m0, m1, m2, m3) if math.isfinite(m)]
  if gamma < 0 or len(set(bounds)) != len(bounds):
    return None
  return optax.piecewise_constant_schedule(
      k0, {int(m): gamma for m in bounds})


R = REQUIRED
_CYC = {"k0": R, "k1": R, "l": R}
_CYC_EXP = {"k0": R, "k1": R, "gamma": R, "l": R}


def _periodic_defs() -> list[PolicyDef]:
  return [PolicyDef(s.name + m, s.family, shapes.periodic(s, m),
                    _CYC_EXP if m == "exp" else _CYC,
                    shapes.periodic_formula(s, m))
          for s in shapes.SHAPES for m in shapes.MODULATIONS]


_DEFS = [
    PolicyDef("fix", "basic", shapes.fix, {"k0": R}, "k0",
              lambda k0: optax.constant_schedule(k0)),
    PolicyDef("step", "basic", shapes.step, {"k0": R, "gamma": R, "l": R},
              "k0 * gamma^floor(t/l)",
              lambda k0, gamma, l: optax.exponential_decay(
                  k0, l, gamma, staircase=True) if l > 0 and gamma > 0
              else None),
    PolicyDef("nstep", "basic", shapes.nstep,
              {"k0": R, "gamma": R, "m0": R, "m1": math.inf, "m2": math.inf,
               "m3": math.inf},
              "k0 * gamma^(number of milestones m_i <= t)", _optax_nstep),
    PolicyDef("exp", "basic", shapes.exp, {"k0": R, "gamma": R},
              "k0 * gamma^t",
              lambda k0, gamma: optax.exponential_decay(k0, 1, gamma)
              if gamma > 0 else None),
    PolicyDef("inv", "basic", shapes.inv, {"k0": R, "gamma": R, "p": R},
              "k0 * (1 + gamma t)^(-p)"),
    PolicyDef("poly", "basic", shapes.poly,
              {"k0": R, "k1": 0.0, "p": R, "l": R},
              "(k0 - k1) (1 - min(t,l)/l)^p + k1",
              lambda k0, k1, p, l: optax.polynomial_schedule(k0, k1, p, l)
              if l > 0 else None),
    PolicyDef("sig", "basic", shapes.sig, {"k0": R, "gamma": R, "l": R},
              "k0 / (1 + exp(-gamma (t - l)))"),
    *_periodic_defs(),
    # Not in LRBench.
    PolicyDef("linear", "extra", shapes.linear, {"k0": R, "k1": R, "l": R},
              "k0 + (k1-k0) min(t,l)/l",
              lambda k0, k1, l: optax.linear_schedule(k0, k1, l)
              if l > 0 else None),
    PolicyDef("onecycle", "extra", shapes.onecycle,
              {"k0": R, "k1": R, "k2": R, "l": R, "p": 0.3},
              "cosine k0 -> k1 over p*l steps, cosine k1 -> k2 until l",
              _optax_onecycle),
    PolicyDef("sgdr", "extra", shapes.sgdr,
              {"k0": R, "k1": R, "l": R, "p": 1.0},
              "k0 + (k1-k0) (1 + cos(pi t_i/T_i))/2, T_i = l p^i"),
    PolicyDef("wsd", "extra", shapes.wsd, {"k0": R, "l": R, "p": 0.2},
              "k0 min(1, max(0, (l - t) / (p l)))"),
]

POLICIES: dict[str, PolicyDef] = {d.name: d for d in _DEFS}
LRBENCH_POLICIES: tuple[str, ...] = tuple(
    d.name for d in _DEFS if d.family != "extra")
POLICY_IDS: dict[str, int] = {d.name: i for i, d in enumerate(_DEFS)}

ALIASES = {
    "fixed": "fix", "constant": "fix", "multistep": "nstep",
    "exponential": "exp", "inverse_time": "inv", "polynomial": "poly",
    "sigmoid": "sig", "triangle": "tri", "triangle2": "tri2",
    "triangle_exp": "triexp", "sine": "sin", "sine2": "sin2",
    "sine_exp": "sinexp", "cosine": "cos", "cosine2": "cos2",
    "cosine_exp": "cosexp", "up_cosine": "upcos", "up_cosine2": "upcos2",
    "up_cosine_exp": "upcosexp", "one_cycle": "onecycle",
    "warmup_stable_decay": "wsd",
}
# Common fields accepted by every policy.
COMMON_FIELDS = {"warmup": 0.0}


def canonical_name(name: str) -> str:
  """The registry name of ``name`` or of its alias (``"triangle2"``).

  Raises:
    PolicyError: the name is unknown (the message suggests close names).
  """
  key = name.strip().lower().replace("-", "_")
  key = ALIASES.get(key, key)
  if key not in POLICIES:
    close = difflib.get_close_matches(key, list(POLICIES) + list(ALIASES), 3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise PolicyError(f"unknown policy {name!r}{hint}")
  return key


def resolve_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
  """Validates fields and fills defaults; errors name the bad field.

  ``nstep`` also accepts LRBench's ``l=[m0, m1, ...]`` list of milestones.

  Args:
    name: a policy name or alias.
    params: the fields given; numbers or arrays (traced values skip the range
      checks).

  Returns:
    Every field of the policy plus ``warmup``, in the registry's order.

  Raises:
    PolicyError: a field is unknown, missing, not a number or out of range.
  """
  name = canonical_name(name)
  d = POLICIES[name]
  params = dict(params)
  if name == "nstep" and "l" in params:
    ms = params.pop("l")
    if not isinstance(ms, (list, tuple)) or not 1 <= len(ms) <= MAX_MILESTONES:
      raise PolicyError(
          f"policy 'nstep': field 'l' must be a list of 1 to "
          f"{MAX_MILESTONES} milestones, got {ms!r}")
    for i, m in enumerate(ms):
      params[f"m{i}"] = m
  allowed = {**d.params, **COMMON_FIELDS}
  for k in params:
    if k not in allowed:
      raise PolicyError(
          f"policy {name!r}: unknown field {k!r} (expected "
          f"{', '.join(allowed)})")
  out = {}
  for k, default in allowed.items():
    if k in params:
      v = params[k]
      if isinstance(v, (bool, str)) or not (
          isinstance(v, numbers.Number) or hasattr(v, "dtype")):
        raise PolicyError(
            f"policy {name!r}: field {k!r} must be a number, got {v!r}")
      out[k] = v
    elif default is REQUIRED:
      raise PolicyError(f"policy {name!r}: missing required field {k!r}")
    else:
      out[k] = default
  _check_ranges(name, out)
  return out


def _check_ranges(name, params):
  def concrete(v):
    return isinstance(v, numbers.Number)
  if "l" in params and concrete(params["l"]) and not params["l"] > 0:
    raise PolicyError(
        f"policy {name!r}: field 'l' must be > 0, got {params['l']}")
  for k in ("k0", "k1", "k2", "warmup"):
    if k in params and concrete(params[k]) and params[k] < 0:
      raise PolicyError(
          f"policy {name!r}: field {k!r} must be >= 0, got {params[k]}")
  if "gamma" in params and concrete(params["gamma"]) and name not in (
      "inv", "sig") and params["gamma"] < 0:
    raise PolicyError(
        f"policy {name!r}: field 'gamma' must be >= 0, got {params['gamma']}")
  if name == "onecycle" and concrete(params["p"]) and not 0 < params["p"] < 1:
    raise PolicyError(
        f"policy 'onecycle': field 'p' must be in (0, 1), got {params['p']}")
  if name == "wsd" and concrete(params["p"]) and not 0 <= params["p"] <= 1:
    raise PolicyError(
        f"policy 'wsd': field 'p' (decay fraction) must be in [0, 1], got "
        f"{params['p']}")
  if name == "sgdr" and concrete(params["p"]) and params["p"] < 1:
    raise PolicyError(
        f"policy 'sgdr': field 'p' (period multiplier) must be >= 1, got "
        f"{params['p']}")


def _f(x):
  return jnp.asarray(x, jnp.float32)


def closed_form(name: str, **params) -> optax.Schedule:
  """The ``jnp`` closed form of a policy (traceable in its parameters).

  Args:
    name: a name of :data:`POLICIES` or an alias.
    **params: the policy's fields plus ``warmup``; numbers or traced arrays.

  Returns:
    An ``optax.Schedule``.
  """
  name = canonical_name(name)
  p = resolve_params(name, params)
  warm = p.pop("warmup")
  fn = POLICIES[name].fn
  base = lambda t: fn(_f(t), **{k: _f(v) for k, v in p.items()})
  return warmup(base, warm)


def policy(name: str, **params) -> optax.Schedule:
  """Builds the schedule ``step -> lr`` of a named policy.

  Returns Optax's own schedule when Optax computes the same function and the
  parameters are concrete numbers; otherwise the ``jnp`` closed form.

  Args:
    name: a name of :data:`POLICIES` or an alias (``"triangle2"``).
    **params: the policy's fields (``k0``, ``k1``, ``gamma``, ``p``, ``l``,
      ...), plus ``warmup`` (steps of linear warm-up in front, default 0).

  Returns:
    An ``optax.Schedule``.
  """
  name = canonical_name(name)
  p = resolve_params(name, params)
  d = POLICIES[name]
  warm = p.pop("warmup")
  if d.optax_fn is not None and all(
      isinstance(v, numbers.Number) for v in p.values()):
    sched = d.optax_fn(**p)
    if sched is not None:
      return warmup(sched, warm)
  return closed_form(name, **p, warmup=warm)


def warmup_ramp(schedule: optax.Schedule, steps: jax.Array, t: jax.Array,
                init_value: float = 0.0) -> jax.Array:
  """The value at step ``t`` of :func:`warmup` with traced ``steps``."""
  ramp = init_value + (schedule(0) - init_value) * t / jnp.maximum(steps, 1.0)
  return jnp.where(t < steps, ramp, schedule(jnp.maximum(t - steps, 0.0)))


def warmup(schedule: optax.Schedule, steps: Any, init_value: float = 0.0
           ) -> optax.Schedule:
  """Linear warm-up from ``init_value`` to ``schedule(0)`` over ``steps``.

  After the warm-up the wrapped schedule runs from its own step 0, i.e.
  ``lr(t) = schedule(t - steps)``. With concrete ``steps`` this is
  ``optax.join_schedules([optax.linear_schedule(...), schedule], [steps])``;
  with traced ``steps`` (a vmapped population) the same function in ``jnp``
  (:func:`warmup_ramp`).

  Args:
    schedule: the schedule after the warm-up.
    steps: length of the warm-up; a number or a traced scalar.
    init_value: the rate at step 0.

  Returns:
    An ``optax.Schedule``.

  References:
    Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1
    Hour", 2017.
  """
  if isinstance(steps, numbers.Number):
    if steps <= 0:
      return schedule
    peak = schedule(0)
    return optax.join_schedules(
        [optax.linear_schedule(init_value, peak, int(steps)), schedule],
        [int(steps)])
  return lambda t: warmup_ramp(schedule, _f(steps), _f(t), init_value)


def compose(schedules: Sequence[optax.Schedule], lengths: Sequence[int]
            ) -> optax.Schedule:
  """Concatenates policies over step ranges (LRBench's composite policy).

  Stage ``i`` runs ``schedules[i]`` from its own step 0 for ``lengths[i]``
  steps; the last stage runs until the end. This is exactly
  ``optax.join_schedules`` with cumulative boundaries.

  Args:
    schedules: one schedule per stage.
    lengths: steps of every stage but the last (``len(schedules) - 1``).

  Returns:
    An ``optax.Schedule``.

  Raises:
    PolicyError: the number of lengths is wrong or a length is not > 0.
  """
  if len(lengths) != len(schedules) - 1:
    raise PolicyError(
        f"compose: need {len(schedules) - 1} stage lengths for "
        f"{len(schedules)} stages, got {len(lengths)}")
  bounds, total = [], 0
  for i, n in enumerate(lengths):
    if not n > 0:
      raise PolicyError(f"compose: length of stage {i} must be > 0, got {n}")
    total += int(n)
    bounds.append(total)
  return optax.join_schedules(list(schedules), bounds)
