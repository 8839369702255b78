"""Methods (a row of a comparison) and the default baselines.

A :class:`Method` maps a base rate to an Optax optimizer: a schedule's peak
rate, a learned controller's starting rate, or a rate ignored by a controller
that sets its own. The default baselines are the six hand schedules of
:mod:`lrmeta.schedules.baselines` (constant, step, cosine, warm-up + cosine,
linear decay to zero, warm-up-stable-decay) on SGD with momentum, each with
its peak rate tuned; every learned controller's verdict is against the best of
them (:func:`lrmeta.protocol.stats.versus_best`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import optax

from lrmeta.schedules.baselines import (BASELINES, baseline_schedule,
                                        parse_baseline)
from lrmeta.train.state import SignalsFn, loss_signal

DEFAULT_BASELINES: tuple[str, ...] = BASELINES
BASE_OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class Method:
  """One row of a comparison.

  Attributes:
    make_optimizer: base rate -> Optax transformation (the rate may be a
      traced array).
    signals: the training-loop signals the transformation reads.
    lr: the base rate when not tuned (``None`` for controllers that set the
      rate themselves).
    tune: tune the base rate over the protocol's grid (when it is not
      empty).
  """

  make_optimizer: Callable[[Any], optax.GradientTransformation]
  signals: SignalsFn = loss_signal
  lr: float | None = None
  tune: bool = True


def fixed(optimizer: optax.GradientTransformation,
          signals: SignalsFn = loss_signal) -> Method:
  """A method that is one ready optimizer (nothing to tune)."""
  return Method(lambda _: optimizer, signals, tune=False)


def base_optimizer(name: str, learning_rate, *, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """SGD (with momentum) or Adam, with optional decoupled L2 weight decay,
  wrapped in ``inject_hyperparams`` so the applied rate is recorded."""
  if name not in BASE_OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r}; choose one of "
                     f"{BASE_OPTIMIZERS}")

  def make(learning_rate):
    core = (optax.sgd(learning_rate, momentum=momentum or None)
            if name == "sgd" else optax.adam(learning_rate))
    if weight_decay:
      return optax.chain(optax.add_decayed_weights(weight_decay), core)
    return core

  return optax.inject_hyperparams(make)(learning_rate=learning_rate)


def schedule_method(kind: str, num_steps: int, *, optimizer: str = "sgd",
                    momentum: float = 0.9, weight_decay: float = 0.0
                    ) -> Method:
  """A baseline schedule whose peak rate the protocol tunes; ``kind`` is a
  baseline name, bare or with its options (``"wsd(decay_fraction=0.3)"``,
  :func:`lrmeta.schedules.baselines.parse_baseline`)."""
  name, options = parse_baseline(kind)
  baseline_schedule(name, 1.0, num_steps, **options)  # checks the budget
  return Method(lambda lr: base_optimizer(
      optimizer, baseline_schedule(name, lr, num_steps, **options),
      momentum=momentum, weight_decay=weight_decay))


def baseline_methods(num_steps: int, names: Sequence[str] = DEFAULT_BASELINES,
                     **kwargs) -> dict[str, Method]:
  """``name -> Method`` of baselines over one budget (``kwargs`` go to
  :func:`schedule_method`)."""
  return {n: schedule_method(n, num_steps, **kwargs) for n in names}


def family_baselines(momentum: float = 0.9,
                     names: Sequence[str] = DEFAULT_BASELINES
                     ) -> dict[str, Callable[[Any], Method]]:
  """The baselines on SGD with momentum as family methods: each decays over
  its shape's budget (``shape.num_steps``), peak rate tuned."""
  def make(kind):
    return lambda shape: schedule_method(kind, shape.num_steps,
                                         momentum=momentum)
  return {kind: make(kind) for kind in names}
