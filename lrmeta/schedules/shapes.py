r"""Closed forms of every hand-designed policy, in ``jnp``.

Each function here maps a step ``t`` (a float32 array) and the policy's numeric
parameters to the learning rate. All are pure ``jnp``: they jit, run inside
``lax.scan``, vmap over their parameters and are differentiable in ``k0``,
``k1``, ``gamma`` and ``p``.

The 27 periodic policies of LRBench are nine *shapes* times three
*modulations* of the amplitude ``k1 - k0``:

* shapes (:data:`SHAPES`): ``tri``, ``dtri``, ``sin``, ``dsin``, ``cos``,
  ``upcos`` (cyclic, ``l`` is the half period) and ``rsw``, ``sinrsw``,
  ``cosrsw`` (restarts every ``l`` steps);
* modulations (:data:`MODULATIONS`): plain; ``"2"``, which halves the
  amplitude once per cycle, at the cycle's low point
  (:math:`2^{-\lfloor c(t) \rfloor}` with ``c`` the shape's cycle count); and
  ``"exp"``, which multiplies it by :math:`\gamma^t`.

:func:`periodic` builds the closed form of one (shape, modulation) pair. The
remaining closed forms (``fix``, ``step``, ``nstep``, ``exp``, ``inv``,
``poly``, ``sig`` and the non-LRBench ``linear``, ``wsd``, ``onecycle``,
``sgdr``) are plain functions below.

Conventions: ``k0`` is the low end of the range and ``k1`` the high end;
``tri``/``sin``/``upcos`` start at ``k0`` and rise, ``dtri``/``dsin``/``cos``
start at ``k1`` and fall (the same curves shifted by half a period). The
restart family uses LRBench's fraction :math:`u = -t/l - \lfloor -t/l
\rfloor`, 0 at multiples of ``l`` and just below 1 right after, so it restarts
at ``k1`` and anneals to ``k0`` over ``l`` steps.

References:
  Wu & Liu, "Selecting and Composing Learning Rate Policies for Deep Neural
  Networks", ACM TIST 14(2), 2023 (LRBench, ``lr/LRfunctions.py``). Smith,
  "Cyclical Learning Rates for Training Neural Networks", WACV 2017.
  Loshchilov & Hutter, "SGDR", ICLR 2017. Smith & Topin, "Super-Convergence",
  2017.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Wave = Callable[[jax.Array, jax.Array], jax.Array]

MODULATIONS = ("", "2", "exp")


# --- helpers -----------------------------------------------------------------

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


def cos_shape(t, l):
  """``(1 + cos(pi t / l)) / 2``: 1 at ``t = 0``, 0 at ``t = l``."""
  return 0.5 * (1.0 + jnp.cos(jnp.pi * t / l))


# --- periodic shapes ---------------------------------------------------------

class Shape(NamedTuple):
  """A periodic unit shape (values in [0, 1]) and its cycle count.

  Attributes:
    name: the plain policy's name; the modulated ones append ``"2"`` or
      ``"exp"``.
    family: ``"cyclic"`` or ``"restart"``.
    wave: ``(t, l) -> [0, 1]``.
    cycle: ``(t, l) -> c``; the ``"2"`` modulation halves the amplitude each
      time ``floor(c)`` grows, which happens at the shape's low point.
    formula: ``wave`` and ``cycle`` written out, for tables and docs.
    halved_wave: the wave the ``"2"`` modulation multiplies, when it is
      computed from the cycle count rather than by ``wave`` (the sines take
      ``sin(pi c)``, which rounds differently in float32 from
      ``sin(pi t / 2l)``); None means ``wave``.
  """

  name: str
  family: str
  wave: Wave
  cycle: Wave
  formula: tuple[str, str]
  halved_wave: Wave | None = None


def _half_cycles(t, l):
  return t / (2 * l)


def _shifted_half_cycles(t, l):
  return (t + l) / (2 * l)


def _restarts(t, l):
  return t / l


def _abs_sin_cycle(t, l, cycle):
  return jnp.abs(jnp.sin(jnp.pi * cycle(t, l)))


SHAPES: tuple[Shape, ...] = (
    Shape("tri", "cyclic", lambda t, l: _tri_wave(t / (2 * l)), _half_cycles,
          ("tri(t/2l)", "t/2l")),
    Shape("dtri", "cyclic", lambda t, l: _tri_wave((t + l) / (2 * l)),
          _shifted_half_cycles, ("tri((t+l)/2l)", "(t+l)/2l")),
    Shape("sin", "cyclic",
          lambda t, l: jnp.abs(jnp.sin(jnp.pi * t / (2 * l))), _half_cycles,
          ("|sin(pi t/2l)|", "t/2l"),
          lambda t, l: _abs_sin_cycle(t, l, _half_cycles)),
    Shape("dsin", "cyclic",
          lambda t, l: jnp.abs(jnp.sin(jnp.pi * (t + l) / (2 * l))),
          _shifted_half_cycles, ("|sin(pi (t+l)/2l)|", "(t+l)/2l"),
          lambda t, l: _abs_sin_cycle(t, l, _shifted_half_cycles)),
    Shape("cos", "cyclic", cos_shape, _shifted_half_cycles,
          ("(1 + cos(pi t/l))/2", "(t+l)/2l")),
    Shape("upcos", "cyclic",
          lambda t, l: 0.5 * (1.0 + jnp.cos(jnp.pi * (t / l + 1.0))),
          _half_cycles, ("(1 + cos(pi (t/l + 1)))/2", "t/2l")),
    Shape("rsw", "restart", _restart_fraction, _restarts,
          ("u", "t/l")),
    Shape("sinrsw", "restart",
          lambda t, l: jnp.sin(0.5 * jnp.pi * _restart_fraction(t, l)),
          _restarts, ("sin(pi u / 2)", "t/l")),
    Shape("cosrsw", "restart",
          lambda t, l: 0.5 * (1.0 - jnp.cos(jnp.pi * _restart_fraction(t, l))),
          _restarts, ("(1 - cos(pi u))/2", "t/l")),
)


def periodic(shape: Shape, modulation: str) -> Callable[..., jax.Array]:
  """The closed form of ``shape`` under ``modulation``.

  Args:
    shape: one of :data:`SHAPES`.
    modulation: ``""`` (constant amplitude), ``"2"`` (halved once per cycle)
      or ``"exp"`` (times ``gamma**t``).

  Returns:
    ``fn(t, k0, k1, l)``, or ``fn(t, k0, k1, gamma, l)`` for ``"exp"``.
  """
  wave, cycle = shape.wave, shape.cycle
  if modulation == "":
    return lambda t, k0, k1, l: _range(k0, k1, wave(t, l))
  if modulation == "2":
    halved = shape.halved_wave or wave
    return lambda t, k0, k1, l: _range(
        k0, k1, halved(t, l) * _halvings(cycle(t, l)))
  if modulation == "exp":
    return lambda t, k0, k1, gamma, l: _range(k0, k1, wave(t, l) * gamma ** t)
  raise ValueError(f"unknown modulation {modulation!r}; use one of "
                   f"{MODULATIONS}")


def periodic_formula(shape: Shape, modulation: str) -> str:
  """``periodic(shape, modulation)`` written out (``l`` the half period)."""
  wave, cycle = shape.formula
  tail = {"": "", "2": f" / 2^floor({cycle})", "exp": " gamma^t"}[modulation]
  if shape.family == "restart":
    tail += ", u = -t/l - floor(-t/l)"
  return f"k0 + (k1-k0) {wave}{tail}"


# --- monotone and other closed forms -----------------------------------------

def fix(t, k0):
  return k0 + 0.0 * t


def step(t, k0, gamma, l):
  return k0 * gamma ** jnp.floor(t / l)


def nstep(t, k0, gamma, m0, m1, m2, m3):
  # Unused milestones are +inf and never pass.
  passed = sum((t >= m).astype(jnp.float32) for m in (m0, m1, m2, m3))
  return k0 * gamma ** passed


def exp(t, k0, gamma):
  return k0 * gamma ** t


def inv(t, k0, gamma, p):
  return k0 * (1.0 + gamma * t) ** (-p)


def poly(t, k0, k1, p, l):
  frac = 1.0 - jnp.clip(t, 0.0, l) / l
  return (k0 - k1) * frac ** p + k1


def sig(t, k0, gamma, l):
  return k0 / (1.0 + jnp.exp(-gamma * (t - l)))


def linear(t, k0, k1, l):
  return k0 + (k1 - k0) * jnp.clip(t, 0.0, l) / l


def wsd(t, k0, l, p):
  """Warm-up-stable-decay without the warm-up: ``k0`` until ``(1 - p) l``,
  then linear decay to 0 at ``l`` (0 after it). ``p = 0`` holds ``k0`` to
  step ``l``."""
  frac = (l - t) / jnp.maximum(p * l, 1e-12)
  return k0 * jnp.clip(frac, 0.0, 1.0)


def _cos_interp(a, b, frac):
  return b + (a - b) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def onecycle(t, k0, k1, k2, l, p):
  """Cosine ``k0 -> k1`` over ``p l`` steps, then cosine ``k1 -> k2``."""
  up = jnp.maximum(p * l, 1.0)
  down = jnp.maximum(l - p * l, 1.0)
  rise = _cos_interp(k0, k1, jnp.clip(t / up, 0.0, 1.0))
  fall = _cos_interp(k1, k2, jnp.clip((t - p * l) / down, 0.0, 1.0))
  return jnp.where(t < p * l, rise, fall)


def sgdr(t, k0, k1, l, p):
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
  return _range(k0, k1, cos_shape(t_cur, period))
