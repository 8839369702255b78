r"""The hand-designed baselines every comparison runs, over a budget of steps.

Each baseline is a peak rate times a unit shape of the budget ``T``
(``num_steps``); the step ``t`` is the number of updates already applied, so
the first update uses ``t = 0`` and the last ``t = T - 1``:

* ``constant``: the peak rate throughout;
* ``step``: x0.1 at 50 % and again at 75 % of the budget (the usual
  ImageNet / CIFAR milestones);
* ``cosine``: cosine decay from the peak to 0 at ``t = T``;
* ``warmup_cosine``: linear warm-up from 0 over the first 5 % of the budget
  (at least one step), then cosine decay to 0 at ``t = T``;
* ``linear``: linear decay from the peak to 0 at ``t = T``, after an optional
  linear warm-up over the first ``warmup_fraction`` of the budget;
* ``wsd`` (warm-up-stable-decay): an optional linear warm-up, the peak rate,
  then linear decay to 0 over the last ``decay_fraction`` of the budget
  (default 0.2):

  .. math::
    \eta(t) = \eta_{\max} \min\Big(1, \frac{t}{w},
      \max\big(0, \frac{T - t}{f T}\big)\Big)

  with ``w`` the warm-up steps (the ``t / w`` term absent without warm-up)
  and ``f`` the decay fraction. ``linear`` is the same formula with
  ``f T = T - w``.

Every rate is 0 from ``t = T`` on. The peak may be a traced array (a tuned
rate in a vmapped population): each schedule is built at peak 1 and scaled.

References:
  Loshchilov & Hutter, "SGDR", ICLR 2017 (cosine). Goyal et al., "Accurate,
  Large Minibatch SGD", 2017 (warm-up). Hu et al., "MiniCPM", 2024, and
  Hägele et al., "Scaling Laws and Compute-Optimal Training Beyond Fixed
  Training Durations", NeurIPS 2024 (warm-up-stable-decay; linear decay to
  zero as a strong default).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

from lrmeta.schedules.spec import parse_call

BASELINES = ("constant", "step", "cosine", "warmup_cosine", "linear", "wsd")
WARMUP_FRACTION = 0.05  # of the budget, for "warmup_cosine"
DECAY_FRACTION = 0.2  # of the budget, for "wsd"
# The options each baseline takes (name -> {option: default}).
OPTIONS: dict[str, dict[str, float]] = {
    "constant": {}, "step": {}, "cosine": {}, "warmup_cosine": {},
    "linear": {"warmup_fraction": 0.0},
    "wsd": {"decay_fraction": DECAY_FRACTION, "warmup_fraction": 0.0},
}


def baseline_options(name: str, options: dict[str, Any]) -> dict[str, float]:
  """``options`` checked against baseline ``name``, defaults filled in.

  Raises:
    ValueError: an unknown baseline or option, or a fraction outside
      [0, 1] (warm-up plus decay may not exceed the budget).
  """
  if name not in OPTIONS:
    raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
  unknown = sorted(set(options) - set(OPTIONS[name]))
  if unknown:
    raise ValueError(f"baseline {name!r}: unknown option(s) {unknown} "
                     f"(expected {sorted(OPTIONS[name]) or 'none'})")
  out = {**OPTIONS[name], **options}
  for key, v in out.items():
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
        0.0 <= v <= 1.0):
      raise ValueError(f"baseline {name!r}: {key} must be a number in "
                       f"[0, 1], got {v!r}")
  if out.get("warmup_fraction", 0.0) + out.get("decay_fraction", 0.0) > 1.0:
    raise ValueError(f"baseline {name!r}: warmup_fraction + decay_fraction "
                     f"must be <= 1, got {out}")
  return {k: float(v) for k, v in out.items()}


def baseline_call(text: str) -> tuple[str, dict[str, Any]] | None:
  """``(name, options)`` when ``text`` names a baseline, bare or called
  with its options (``"wsd(decay_fraction=0.3)"``); ``None`` otherwise
  (e.g. the LRBench policy ``"linear(k0=0.1, k1=0, l=100)"``)."""
  try:
    name, options = parse_call(text)
  except ValueError:
    return None
  if name in OPTIONS and set(options) <= set(OPTIONS[name]):
    return name, options
  return None


def parse_baseline(text: str) -> tuple[str, dict[str, float]]:
  """``(name, options)`` of a baseline given as text, options checked.

  Raises:
    ValueError: ``text`` is not a baseline or its options are out of range.
  """
  call = baseline_call(text)
  if call is None:
    raise ValueError(f"{text!r} is not a baseline: give one of {BASELINES}, "
                     f"bare or with options, e.g. 'wsd(decay_fraction=0.3)'")
  return call[0], baseline_options(*call)


def warmup_steps(fraction: float, num_steps: int) -> int:
  """Warm-up steps for ``fraction`` of the budget: 0 for a zero fraction,
  else at least one."""
  return 0 if fraction <= 0 else max(1, int(fraction * num_steps))


def _ramp_decay(num_steps: int, warmup: int, decay: float) -> optax.Schedule:
  """Unit schedule: ``min(1, t / warmup, (T - t) / decay)``, clipped at 0."""
  t_end = float(num_steps)

  def unit(count):
    t = jnp.asarray(count, jnp.float32)
    down = jnp.clip((t_end - t) / max(decay, 1e-12), 0.0, 1.0)
    if warmup <= 0:
      return down
    return jnp.minimum(jnp.clip(t / warmup, 0.0, 1.0), down)
  return unit


def unit_schedule(name: str, num_steps: int, **options) -> optax.Schedule:
  """The shape of baseline ``name`` at peak 1 over ``num_steps`` steps.

  Args:
    name: one of :data:`BASELINES`.
    num_steps: the budget ``T``.
    **options: ``warmup_fraction`` (``linear``, ``wsd``) and
      ``decay_fraction`` (``wsd``), fractions of the budget.

  Raises:
    ValueError: an unknown name or option, or a budget too short for the
      warm-up.
  """
  opts = baseline_options(name, options)
  if num_steps < 1:
    raise ValueError(f"baseline {name!r} needs a budget >= 1, got {num_steps}")
  if name == "constant":
    return optax.constant_schedule(1.0)
  if name == "cosine":
    return optax.cosine_decay_schedule(1.0, num_steps)
  if name == "step":
    return optax.piecewise_constant_schedule(
        1.0, {int(0.5 * num_steps): 0.1, int(0.75 * num_steps): 0.1})
  if name == "warmup_cosine":
    warm = warmup_steps(WARMUP_FRACTION, num_steps)
    if num_steps <= warm:
      raise ValueError(f"warmup_cosine needs a budget of at least 2 steps, "
                       f"got {num_steps}")
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, warm, num_steps)
  warm = warmup_steps(opts["warmup_fraction"], num_steps)
  if warm >= num_steps:
    raise ValueError(f"baseline {name!r}: the warm-up ({warm} steps) fills "
                     f"the budget of {num_steps}")
  decay = (num_steps - warm if name == "linear"
           else opts["decay_fraction"] * num_steps)
  return _ramp_decay(num_steps, warm, decay)


def baseline_schedule(name: str, peak: Any, num_steps: int,
                      **options) -> optax.Schedule:
  """Baseline ``name`` at peak rate ``peak`` (a number or a traced array)
  over ``num_steps`` steps (:func:`unit_schedule` scaled)."""
  unit = unit_schedule(name, num_steps, **options)
  return lambda count: peak * unit(count)
