"""Checks of a controller factory's static arguments.

A factory calls these on the arguments it receives, so a bad value fails
where it is passed, with a message naming the factory, the argument and the
rule. Only static numbers (Python or NumPy scalars) are checked: a traced or
device value, as passed by ``optax.inject_hyperparams``, ``jax.vmap`` over
hyperparameters or a meta-gradient, is accepted unchecked.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np


def is_static_number(x: Any) -> bool:
  """True for a Python or NumPy real scalar (bool excluded)."""
  if isinstance(x, (bool, np.bool_)):
    return False
  if isinstance(x, np.ndarray):
    return x.ndim == 0 and np.issubdtype(x.dtype, np.number)
  return isinstance(x, (numbers.Real, np.integer, np.floating))


def _fail(fn: str, name: str, rule: str, value: Any) -> None:
  raise ValueError(f"{fn}: {name} must be {rule}, got {value!r}")


def _value(x: Any) -> Any:
  return x.item() if isinstance(x, (np.ndarray, np.generic)) else x


def positive(fn: str, name: str, x: Any) -> None:
  """``x > 0`` (NaN fails)."""
  if is_static_number(x) and not _value(x) > 0:
    _fail(fn, name, "> 0", _value(x))


def non_negative(fn: str, name: str, x: Any) -> None:
  """``x >= 0`` and finite."""
  if is_static_number(x) and not 0 <= _value(x) < float("inf"):
    _fail(fn, name, ">= 0 and finite", _value(x))


def unit_interval(fn: str, name: str, x: Any) -> None:
  """``0 <= x < 1`` (a decay or momentum coefficient); ``None`` passes."""
  if x is not None and is_static_number(x) and not 0 <= _value(x) < 1:
    _fail(fn, name, "in [0, 1)", _value(x))


def positive_int(fn: str, name: str, x: Any) -> None:
  """A static integer ``>= 1``."""
  if isinstance(x, (bool, np.bool_)) or not isinstance(
      x, (numbers.Integral, np.integer)) or x < 1:
    _fail(fn, name, "an integer >= 1", x)


def one_of(fn: str, name: str, x: Any, choices: Sequence[str]) -> None:
  """``x`` is one of ``choices`` (the message lists them)."""
  if x not in choices:
    raise ValueError(f"{fn}: {name} must be one of {tuple(choices)}, "
                     f"got {x!r}")


def rate_bounds(fn: str, initial_learning_rate: Any, min_lr: Any,
                max_lr: Any, *, min_lr_positive: bool) -> None:
  """``0 <= min_lr < max_lr`` (``0 < min_lr`` when ``min_lr_positive``) and
  ``initial_learning_rate`` positive and within ``[min_lr, max_lr]``."""
  if min_lr_positive:
    positive(fn, "min_lr", min_lr)
  else:
    non_negative(fn, "min_lr", min_lr)
  positive(fn, "max_lr", max_lr)
  if is_static_number(min_lr) and is_static_number(max_lr) and not (
      _value(min_lr) < _value(max_lr)):
    raise ValueError(f"{fn}: max_lr must be > min_lr, got min_lr={min_lr!r}, "
                     f"max_lr={max_lr!r}")
  positive(fn, "initial_learning_rate", initial_learning_rate)
  if not is_static_number(initial_learning_rate):
    return
  lr0 = _value(initial_learning_rate)
  if is_static_number(max_lr) and lr0 > _value(max_lr):
    raise ValueError(f"{fn}: initial_learning_rate={lr0!r} is above "
                     f"max_lr={_value(max_lr)!r}")
  if is_static_number(min_lr) and lr0 < _value(min_lr):
    raise ValueError(f"{fn}: initial_learning_rate={lr0!r} is below "
                     f"min_lr={_value(min_lr)!r}")
