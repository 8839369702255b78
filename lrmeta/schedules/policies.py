r"""Every LRBench learning-rate function as an Optax schedule, plus extras.

A *policy* is a named LR function with numeric parameters. All 34 functions of
LRBench's public code (``lr/LRfunctions.py``) are here under LRBench's own
(lower-cased) names, together with a few policies LRBench lacks (linear ramp,
one-cycle, SGDR with period multiplier), a linear warm-up in front of any
policy (the ``warmup`` field) and multi-stage composition (:func:`compose`).

Conventions (the same for every cyclic and restart policy):

* ``t`` is the step *within the policy's own stage* (a composite evaluates each
  stage at ``t - stage_start``, as LRBench's ``piecewiseLR`` does).
* ``k0`` is the low end of the range and ``k1`` the high end.
* ``l`` is the **half period**: the number of steps from one extreme of a
  cyclic policy to the other; a full cycle is ``2 l`` steps. This is what
  LRBench's code computes for the triangle, sine *and* cosine families. LRBench
  issue #1 reported that the TIST/arXiv paper's Table I writes the cosine as
  :math:`\cos(2\pi t / l)` (a full period of ``l``) while the code uses
  :math:`\cos(\pi t / l)`; the maintainers answered that ``l`` is the half
  period. We follow the code, so ``cos`` falls from ``k1`` at ``t = 0`` to
  ``k0`` at ``t = l`` and is back at ``k1`` at ``t = 2 l``, in phase with
  ``dtri`` and ``dsin``.
* Phase-shifted variants (LRBench's ``d*`` and ``up*``) are the same curves
  shifted by one half period: ``tri``/``sin``/``upcos`` start at ``k0`` and
  rise; ``dtri``/``dsin``/``cos`` start at ``k1`` and fall.
* The ``*2`` variants halve the amplitude ``k1 - k0`` once per full cycle, at
  the cycle's low point (where the halving is continuous); the ``*exp`` variants
  multiply the amplitude by ``gamma**t``.
* The restart family uses LRBench's fraction :math:`u = -t/l - \lfloor -t/l
  \rfloor`, which is 0 at multiples of ``l`` and jumps to (just below) 1 right
  after: ``rsw``/``sinrsw``/``cosrsw`` restart at ``k1`` and anneal to ``k0``
  over ``l`` steps, with the value at ``t = 0, l, 2l, ...`` equal to ``k0``
  (LRBench's exact formula). :func:`sgdr <POLICIES>` is the usual SGDR
  (Loshchilov & Hutter), which starts each cycle at ``k1``.

Every closed form is a pure ``jnp`` function of ``(t, params)``: it jits, runs
inside ``lax.scan``, vmaps over its parameters, and is differentiable in
``k0``, ``k1``, ``gamma`` and ``p``. Where Optax already computes the same
function (``fix``, ``step``, ``nstep``, ``exp``, ``poly``, ``linear``,
``onecycle``, warm-up and composition) :func:`policy` returns Optax's schedule
when the parameters are concrete numbers; with traced parameters (a vmapped
population) it returns the closed form, because Optax validates those
arguments with Python ``if`` statements. The tests check that the two agree.

References:
  Wu & Liu, "Selecting and Composing Learning Rate Policies for Deep Neural
  Networks", ACM TIST 14(2), 2023 (LRBench). Wu et al., "Demystifying Learning
  Rate Policies for High Accuracy Training of Deep Neural Networks", IEEE
  BigData 2019. Smith, "Cyclical Learning Rates for Training Neural Networks",
  WACV 2017. Loshchilov & Hutter, "SGDR", ICLR 2017. Smith & Topin,
  "Super-Convergence", 2017. Goyal et al., "Accurate, Large Minibatch SGD",
  2017 (linear warm-up).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

# Fixed parameter vector shared by every policy, so that candidates of
# different families stack into one array and one vmapped program.
SLOTS = ("k0", "k1", "k2", "gamma", "p", "l", "warmup", "m0", "m1", "m2",
         "m3")
SLOT = {name: i for i, name in enumerate(SLOTS)}
NUM_SLOTS = len(SLOTS)
MAX_MILESTONES = 4  # nstep: up to four decay steps (slots m0..m3)
REQUIRED = object()


# --- closed forms ------------------------------------------------------------

def _f(x):
  return jnp.asarray(x, jnp.float32)


def _tri_wave(x):
  """``(2/pi) |asin(sin(pi x))|`` computed exactly: 0 at integers, 1 midway."""
  return 2.0 * jnp.abs(x - jnp.round(x))


def _halvings(x):
  return jnp.exp2(-jnp.floor(x))


def _restart_fraction(t, l):
  """LRBench's ``-t/l - floor(-t/l)``: 0 at multiples of l, else 1 - frac."""
  x = -t / l
  return x - jnp.floor(x)


def _range(k0, k1, shape):
  return (k1 - k0) * shape + k0


def _fix(t, k0):
  return k0 + 0.0 * t


def _step(t, k0, gamma, l):
  return k0 * gamma ** jnp.floor(t / l)


def _nstep(t, k0, gamma, m0, m1, m2, m3):
  # Unused milestones are +inf and never pass.
  passed = sum((t >= m).astype(jnp.float32) for m in (m0, m1, m2, m3))
  return k0 * gamma ** passed


def _exp(t, k0, gamma):
  return k0 * gamma ** t


def _inv(t, k0, gamma, p):
  return k0 * (1.0 + gamma * t) ** (-p)


def _poly(t, k0, k1, p, l):
  frac = 1.0 - jnp.clip(t, 0.0, l) / l
  return (k0 - k1) * frac ** p + k1


def _sig(t, k0, gamma, l):
  return k0 / (1.0 + jnp.exp(-gamma * (t - l)))


def _tri(t, k0, k1, l):
  return _range(k0, k1, _tri_wave(t / (2 * l)))


def _tri2(t, k0, k1, l):
  return _range(k0, k1, _tri_wave(t / (2 * l)) * _halvings(t / (2 * l)))


def _triexp(t, k0, k1, gamma, l):
  return _range(k0, k1, _tri_wave(t / (2 * l)) * gamma ** t)


def _dtri(t, k0, k1, l):
  return _range(k0, k1, _tri_wave((t + l) / (2 * l)))


def _dtri2(t, k0, k1, l):
  x = (t + l) / (2 * l)
  return _range(k0, k1, _tri_wave(x) * _halvings(x))


def _dtriexp(t, k0, k1, gamma, l):
  return _range(k0, k1, _tri_wave((t + l) / (2 * l)) * gamma ** t)


def _sin(t, k0, k1, l):
  return _range(k0, k1, jnp.abs(jnp.sin(jnp.pi * t / (2 * l))))


def _sin2(t, k0, k1, l):
  x = t / (2 * l)
  return _range(k0, k1, jnp.abs(jnp.sin(jnp.pi * x)) * _halvings(x))


def _sinexp(t, k0, k1, gamma, l):
  return _range(k0, k1, jnp.abs(jnp.sin(jnp.pi * t / (2 * l))) * gamma ** t)


def _dsin(t, k0, k1, l):
  return _range(k0, k1, jnp.abs(jnp.sin(jnp.pi * (t + l) / (2 * l))))


def _dsin2(t, k0, k1, l):
  x = (t + l) / (2 * l)
  return _range(k0, k1, jnp.abs(jnp.sin(jnp.pi * x)) * _halvings(x))


def _dsinexp(t, k0, k1, gamma, l):
  return _range(k0, k1,
                jnp.abs(jnp.sin(jnp.pi * (t + l) / (2 * l))) * gamma ** t)


def _cos_shape(t, l):
  return 0.5 * (1.0 + jnp.cos(jnp.pi * t / l))


def _upcos_shape(t, l):
  return 0.5 * (1.0 + jnp.cos(jnp.pi * (t / l + 1.0)))


def _cos(t, k0, k1, l):
  return _range(k0, k1, _cos_shape(t, l))


def _cos2(t, k0, k1, l):
  return _range(k0, k1, _cos_shape(t, l) * _halvings((t + l) / (2 * l)))


def _cosexp(t, k0, k1, gamma, l):
  return _range(k0, k1, _cos_shape(t, l) * gamma ** t)


def _upcos(t, k0, k1, l):
  return _range(k0, k1, _upcos_shape(t, l))


def _upcos2(t, k0, k1, l):
  return _range(k0, k1, _upcos_shape(t, l) * _halvings(t / (2 * l)))


def _upcosexp(t, k0, k1, gamma, l):
  return _range(k0, k1, _upcos_shape(t, l) * gamma ** t)


def _rsw(t, k0, k1, l):
  return _range(k0, k1, _restart_fraction(t, l))


def _rsw2(t, k0, k1, l):
  return _range(k0, k1, _restart_fraction(t, l) * _halvings(t / l))


def _rswexp(t, k0, k1, gamma, l):
  return _range(k0, k1, _restart_fraction(t, l) * gamma ** t)


def _sinrsw_shape(t, l):
  return jnp.sin(0.5 * jnp.pi * _restart_fraction(t, l))


def _cosrsw_shape(t, l):
  return 0.5 * (1.0 - jnp.cos(jnp.pi * _restart_fraction(t, l)))


def _sinrsw(t, k0, k1, l):
  return _range(k0, k1, _sinrsw_shape(t, l))


def _sinrsw2(t, k0, k1, l):
  return _range(k0, k1, _sinrsw_shape(t, l) * _halvings(t / l))


def _sinrswexp(t, k0, k1, gamma, l):
  return _range(k0, k1, _sinrsw_shape(t, l) * gamma ** t)


def _cosrsw(t, k0, k1, l):
  return _range(k0, k1, _cosrsw_shape(t, l))


def _cosrsw2(t, k0, k1, l):
  return _range(k0, k1, _cosrsw_shape(t, l) * _halvings(t / l))


def _cosrswexp(t, k0, k1, gamma, l):
  return _range(k0, k1, _cosrsw_shape(t, l) * gamma ** t)


def _linear(t, k0, k1, l):
  return k0 + (k1 - k0) * jnp.clip(t, 0.0, l) / l


def _cos_interp(a, b, frac):
  return b + (a - b) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def _onecycle(t, k0, k1, k2, l, p):
  up = jnp.maximum(p * l, 1.0)
  down = jnp.maximum(l - p * l, 1.0)
  rise = _cos_interp(k0, k1, jnp.clip(t / up, 0.0, 1.0))
  fall = _cos_interp(k1, k2, jnp.clip((t - p * l) / down, 0.0, 1.0))
  return jnp.where(t < p * l, rise, fall)


def _sgdr(t, k0, k1, l, p):
  """Cosine annealing from k1 to k0 with restarts; cycle i lasts l * p**i."""
  mult = p
  safe = jnp.where(mult == 1.0, 2.0, mult)
  n = jnp.floor(jnp.log1p(t * (safe - 1.0) / l) / jnp.log(safe) + 1e-4)
  start = l * (safe ** n - 1.0) / (safe - 1.0)
  n = jnp.where(start > t, n - 1.0, n)
  start = l * (safe ** n - 1.0) / (safe - 1.0)
  t_geo, period_geo = t - start, l * safe ** n
  t_cur = jnp.where(mult == 1.0, jnp.mod(t, l), t_geo)
  period = jnp.where(mult == 1.0, l, period_geo)
  return _range(k0, k1, _cos_shape(t_cur, period))


# --- registry ----------------------------------------------------------------

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
_INF = math.inf
_CYC = {"k0": R, "k1": R, "l": R}
_CYC_EXP = {"k0": R, "k1": R, "gamma": R, "l": R}

_DEFS = [
    PolicyDef("fix", "basic", _fix, {"k0": R}, "k0",
              lambda k0: optax.constant_schedule(k0)),
    PolicyDef("step", "basic", _step, {"k0": R, "gamma": R, "l": R},
              "k0 * gamma^floor(t/l)",
              lambda k0, gamma, l: optax.exponential_decay(
                  k0, l, gamma, staircase=True) if l > 0 and gamma > 0
              else None),
    PolicyDef("nstep", "basic", _nstep,
              {"k0": R, "gamma": R, "m0": R, "m1": _INF, "m2": _INF,
               "m3": _INF},
              "k0 * gamma^(number of milestones m_i <= t)", _optax_nstep),
    PolicyDef("exp", "basic", _exp, {"k0": R, "gamma": R}, "k0 * gamma^t",
              lambda k0, gamma: optax.exponential_decay(k0, 1, gamma)
              if gamma > 0 else None),
    PolicyDef("inv", "basic", _inv, {"k0": R, "gamma": R, "p": R},
              "k0 * (1 + gamma t)^(-p)"),
    PolicyDef("poly", "basic", _poly, {"k0": R, "k1": 0.0, "p": R, "l": R},
              "(k0 - k1) (1 - min(t,l)/l)^p + k1",
              lambda k0, k1, p, l: optax.polynomial_schedule(k0, k1, p, l)
              if l > 0 else None),
    PolicyDef("sig", "basic", _sig, {"k0": R, "gamma": R, "l": R},
              "k0 / (1 + exp(-gamma (t - l)))"),
    PolicyDef("tri", "cyclic", _tri, _CYC, "k0 + (k1-k0) tri(t/2l)"),
    PolicyDef("tri2", "cyclic", _tri2, _CYC,
              "k0 + (k1-k0) tri(t/2l) / 2^floor(t/2l)"),
    PolicyDef("triexp", "cyclic", _triexp, _CYC_EXP,
              "k0 + (k1-k0) tri(t/2l) gamma^t"),
    PolicyDef("dtri", "cyclic", _dtri, _CYC, "k0 + (k1-k0) tri((t+l)/2l)"),
    PolicyDef("dtri2", "cyclic", _dtri2, _CYC,
              "k0 + (k1-k0) tri((t+l)/2l) / 2^floor((t+l)/2l)"),
    PolicyDef("dtriexp", "cyclic", _dtriexp, _CYC_EXP,
              "k0 + (k1-k0) tri((t+l)/2l) gamma^t"),
    PolicyDef("sin", "cyclic", _sin, _CYC, "k0 + (k1-k0) |sin(pi t/2l)|"),
    PolicyDef("sin2", "cyclic", _sin2, _CYC,
              "k0 + (k1-k0) |sin(pi t/2l)| / 2^floor(t/2l)"),
    PolicyDef("sinexp", "cyclic", _sinexp, _CYC_EXP,
              "k0 + (k1-k0) |sin(pi t/2l)| gamma^t"),
    PolicyDef("dsin", "cyclic", _dsin, _CYC,
              "k0 + (k1-k0) |sin(pi (t+l)/2l)|"),
    PolicyDef("dsin2", "cyclic", _dsin2, _CYC,
              "k0 + (k1-k0) |sin(pi (t+l)/2l)| / 2^floor((t+l)/2l)"),
    PolicyDef("dsinexp", "cyclic", _dsinexp, _CYC_EXP,
              "k0 + (k1-k0) |sin(pi (t+l)/2l)| gamma^t"),
    PolicyDef("cos", "cyclic", _cos, _CYC,
              "k0 + (k1-k0) (1 + cos(pi t/l))/2"),
    PolicyDef("cos2", "cyclic", _cos2, _CYC,
              "k0 + (k1-k0) (1 + cos(pi t/l))/2 / 2^floor((t+l)/2l)"),
    PolicyDef("cosexp", "cyclic", _cosexp, _CYC_EXP,
              "k0 + (k1-k0) (1 + cos(pi t/l))/2 gamma^t"),
    PolicyDef("upcos", "cyclic", _upcos, _CYC,
              "k0 + (k1-k0) (1 + cos(pi (t/l + 1)))/2"),
    PolicyDef("upcos2", "cyclic", _upcos2, _CYC,
              "k0 + (k1-k0) (1 + cos(pi (t/l + 1)))/2 / 2^floor(t/2l)"),
    PolicyDef("upcosexp", "cyclic", _upcosexp, _CYC_EXP,
              "k0 + (k1-k0) (1 + cos(pi (t/l + 1)))/2 gamma^t"),
    PolicyDef("rsw", "restart", _rsw, _CYC, "k0 + (k1-k0) u, u = -t/l - floor(-t/l)"),
    PolicyDef("rsw2", "restart", _rsw2, _CYC,
              "k0 + (k1-k0) u / 2^floor(t/l)"),
    PolicyDef("rswexp", "restart", _rswexp, _CYC_EXP,
              "k0 + (k1-k0) u gamma^t"),
    PolicyDef("sinrsw", "restart", _sinrsw, _CYC,
              "k0 + (k1-k0) sin(pi u / 2)"),
    PolicyDef("sinrsw2", "restart", _sinrsw2, _CYC,
              "k0 + (k1-k0) sin(pi u / 2) / 2^floor(t/l)"),
    PolicyDef("sinrswexp", "restart", _sinrswexp, _CYC_EXP,
              "k0 + (k1-k0) sin(pi u / 2) gamma^t"),
    PolicyDef("cosrsw", "restart", _cosrsw, _CYC,
              "k0 + (k1-k0) (1 - cos(pi u))/2"),
    PolicyDef("cosrsw2", "restart", _cosrsw2, _CYC,
              "k0 + (k1-k0) (1 - cos(pi u))/2 / 2^floor(t/l)"),
    PolicyDef("cosrswexp", "restart", _cosrswexp, _CYC_EXP,
              "k0 + (k1-k0) (1 - cos(pi u))/2 gamma^t"),
    # Not in LRBench.
    PolicyDef("linear", "extra", _linear, {"k0": R, "k1": R, "l": R},
              "k0 + (k1-k0) min(t,l)/l",
              lambda k0, k1, l: optax.linear_schedule(k0, k1, l)
              if l > 0 else None),
    PolicyDef("onecycle", "extra", _onecycle,
              {"k0": R, "k1": R, "k2": R, "l": R, "p": 0.3},
              "cosine k0 -> k1 over p*l steps, cosine k1 -> k2 until l",
              _optax_onecycle),
    PolicyDef("sgdr", "extra", _sgdr, {"k0": R, "k1": R, "l": R, "p": 1.0},
              "k0 + (k1-k0) (1 + cos(pi t_i/T_i))/2, T_i = l p^i"),
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
}
# Common fields accepted by every policy.
COMMON_FIELDS = {"warmup": 0.0}


class PolicyError(ValueError):
  """A policy name or field is unknown, missing or out of range."""


def canonical_name(name: str) -> str:
  key = name.strip().lower().replace("-", "_")
  key = ALIASES.get(key, key)
  if key not in POLICIES:
    import difflib  # pylint: disable=g-import-not-at-top
    close = difflib.get_close_matches(key, list(POLICIES) + list(ALIASES), 3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise PolicyError(f"unknown policy {name!r}{hint}")
  return key


def resolve_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
  """Validates fields and fills defaults; errors name the bad field.

  ``nstep`` also accepts LRBench's ``l=[m0, m1, ...]`` list of milestones.
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
  for k in ("l",):
    if k in params and concrete(params[k]) and not params[k] > 0:
      raise PolicyError(
          f"policy {name!r}: field 'l' must be > 0, got {params[k]}")
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
  if name == "sgdr" and concrete(params["p"]) and params["p"] < 1:
    raise PolicyError(
        f"policy 'sgdr': field 'p' (period multiplier) must be >= 1, got "
        f"{params['p']}")


def _is_static(params):
  return all(isinstance(v, numbers.Number) for v in params.values())


def closed_form(name: str, **params) -> optax.Schedule:
  """The ``jnp`` closed form of a policy (traceable in its parameters)."""
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
  if d.optax_fn is not None and _is_static(p):
    sched = d.optax_fn(**p)
    if sched is not None:
      return warmup(sched, warm)
  return closed_form(name, **p, warmup=warm)


def warmup(schedule: optax.Schedule, steps: Any, init_value: float = 0.0
           ) -> optax.Schedule:
  """Linear warm-up from ``init_value`` to ``schedule(0)`` over ``steps``.

  After the warm-up the wrapped schedule runs from its own step 0, i.e.
  ``lr(t) = schedule(t - steps)``. With concrete ``steps`` this is
  ``optax.join_schedules([optax.linear_schedule(...), schedule], [steps])``;
  with traced ``steps`` (a vmapped population) the same function in ``jnp``.

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

  def fn(t):
    t = _f(t)
    w = _f(steps)
    ramp = init_value + (schedule(0) - init_value) * t / jnp.maximum(w, 1.0)
    return jnp.where(t < w, ramp, schedule(jnp.maximum(t - w, 0.0)))
  return fn


def compose(schedules: Sequence[optax.Schedule], lengths: Sequence[int]
            ) -> optax.Schedule:
  """Concatenates policies over step ranges (LRBench's composite policy).

  Stage ``i`` runs ``schedules[i]`` from its own step 0 for ``lengths[i]``
  steps; the last stage runs until the end. This is exactly
  ``optax.join_schedules`` with cumulative boundaries.

  Args:
    schedules: one schedule per stage.
    lengths: steps of every stage but the last (``len(schedules) - 1``).
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


# --- packed policies: one array layout for every family -----------------------

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


def _branch(d: PolicyDef):
  names = list(d.params)

  def run(t, theta):
    kw = {k: theta[SLOT[k]] for k in names}
    base = lambda s: d.fn(s, **kw)
    w = theta[SLOT["warmup"]]
    ramp = base(0.0) * t / jnp.maximum(w, 1.0)
    return jnp.where(t < w, ramp, base(jnp.maximum(t - w, 0.0)))
  return run


_BRANCHES = [_branch(d) for d in _DEFS]


def pack(stages: Sequence[tuple[str, Mapping[str, Any]]],
         lengths: Sequence[int] = (), max_stages: int | None = None
         ) -> PackedPolicy:
  """Packs ``[(name, params), ...]`` and stage lengths into arrays.

  Args:
    stages: the policy of each stage.
    lengths: steps of every stage but the last.
    max_stages: pad to this many stages (so composites of different lengths
      stack); default ``len(stages)``.
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
    name = canonical_name(name)
    p = resolve_params(name, params)
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
  """
  def fn(t):
    t = _f(t)
    stage = jnp.sum(t >= packed.starts[1:]).astype(jnp.int32)
    local = t - packed.starts[stage]
    return jax.lax.switch(packed.ids[stage], _BRANCHES, local,
                          packed.theta[stage])
  return fn


def sgd(schedule: optax.Schedule, momentum: float | None = 0.9,
        nesterov: bool = False) -> optax.GradientTransformation:
  """SGD with a scheduled rate, its applied rate recorded as ``learning_rate``.

  ``optax.inject_hyperparams(optax.sgd)`` evaluates the schedule at the step
  count and stores the value in its state, where
  :func:`lrmeta.train.applied_learning_rate` reads it.
  """
  return optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))(
      learning_rate=schedule, momentum=momentum, nesterov=nesterov)


class PlateauState(NamedTuple):
  """State of :func:`plateau_sgd`'s scaling: optax's plateau state + rate."""

  plateau: Any  # optax.contrib.ReduceLROnPlateauState
  learning_rate: jax.Array
  count: jax.Array


def scale_by_plateau_lr(learning_rate: float, **plateau_kwargs
                        ) -> optax.GradientTransformationExtraArgs:
  """``-learning_rate * scale``, ``scale`` from optax's reduce-on-plateau.

  Wraps ``optax.contrib.reduce_on_plateau`` (which reads ``value=`` extra
  args) and exposes the applied rate ``learning_rate * scale`` in the state.
  """
  inner = optax.contrib.reduce_on_plateau(**plateau_kwargs)
  lr0 = jnp.asarray(learning_rate, jnp.float32)

  def init_fn(params):
    return PlateauState(inner.init(params), lr0, jnp.zeros((), jnp.int32))

  def update_fn(updates, state, params=None, *, value=None, **extra):
    del extra
    if value is None:
      raise ValueError("reduce-on-plateau needs the loss as `value=`")
    updates, plateau = inner.update(updates, state.plateau, params,
                                    value=value)
    updates = jax.tree.map(lambda u: -lr0 * u, updates)
    lr = (lr0 * plateau.scale).astype(jnp.float32)
    return updates, PlateauState(plateau, lr, state.count + 1)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def plateau_sgd(learning_rate: float, momentum: float = 0.9, *,
                factor: float = 0.5, patience: int = 10, cooldown: int = 0,
                rtol: float = 1e-4, atol: float = 0.0,
                accumulation_size: int = 1, min_scale: float = 0.0
                ) -> optax.GradientTransformationExtraArgs:
  """SGD (momentum) whose rate drops by ``factor`` when the loss plateaus.

  The plateau logic is ``optax.contrib.reduce_on_plateau``; only the
  recording of the applied rate is added. Pass the loss as ``value=``.

  References:
    PyTorch ``ReduceLROnPlateau``; LRBench's ``ChangeLROnPlateau``.
  """
  return optax.chain(
      optax.trace(decay=momentum),
      scale_by_plateau_lr(learning_rate, factor=factor, patience=patience,
                          cooldown=cooldown, rtol=rtol, atol=atol,
                          accumulation_size=accumulation_size,
                          min_scale=min_scale))
