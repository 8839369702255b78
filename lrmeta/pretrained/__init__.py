"""Pretrained controllers: small meta-trained controllers shipped with the
package, loaded by name without network or meta-training.

Each shipped controller is a folder of this package's ``store/`` with
``weights.json`` (the saved-controller config and ``theta``, a few hundred
numbers), ``card.json`` (what it was trained on, by which command and
commit, its held-out table, and a reference rate trajectory) and
``card.md`` (the same, to read)::

  import lrmeta.pretrained as pretrained
  pretrained.names()    # ('learned_schedule_adam', 'learned_schedule_adam_aware', ...)
  make = pretrained.controller("learned_schedule_sgd")
  tx = make(0.05, 1000)                     # optax, reads value=loss

  lrmeta train --config configs/fashion_mnist.py \\
      --config.methods="('pretrained:learned_schedule_sgd',)"

The reference trajectory (:func:`reference_rates`) is the rate the
controller applies on a fixed, closed-form sequence of losses and gradients
(:func:`reference_inputs`), so a test can check that a shipped controller,
loaded in a fresh install, still computes what its card says.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta import learned
from lrmeta.train.state import applied_learning_rate, as_extra_args

PREFIX = "pretrained:"
# The reference input: REFERENCE_STEPS steps on a vector of REFERENCE_DIM.
REFERENCE_STEPS = 200
REFERENCE_DIM = 8

Factory = Callable[..., optax.GradientTransformationExtraArgs]


def _store():
  return resources.files(__name__).joinpath("store")


def names() -> tuple[str, ...]:
  """The shipped controllers' names."""
  return tuple(sorted(p.name for p in _store().iterdir()
                      if p.joinpath("weights.json").is_file()))


def _folder(name: str):
  if name not in names():
    raise ValueError(f"unknown pretrained controller {name!r}; shipped: "
                     f"{list(names())}")
  return _store().joinpath(name)


def _to_tree(node: Any) -> Any:
  """JSON lists back to float32 arrays (dicts kept)."""
  if isinstance(node, dict):
    return {k: _to_tree(v) for k, v in node.items()}
  return jnp.asarray(np.asarray(node, np.float32))


def _to_json(node: Any) -> Any:
  """A ``theta`` tree as nested dicts and lists of floats (a float32 value
  is exact as a Python float, so the round trip is exact)."""
  if isinstance(node, dict):
    return {k: _to_json(v) for k, v in node.items()}
  return np.asarray(node, np.float32).tolist()


@functools.lru_cache(maxsize=None)
def _weights(name: str) -> str:
  return _folder(name).joinpath("weights.json").read_text()


def load(name: str) -> learned.SavedController:
  """The shipped controller ``name`` as a saved controller (its kind,
  ``theta`` and config)."""
  w = json.loads(_weights(name))
  return learned.SavedController(learned.get(w["config"]["controller"]),
                                 _to_tree(w["theta"]), w["config"])


def card(name: str) -> dict:
  """The card of ``name`` (``card.json``)."""
  return json.loads(_folder(name).joinpath("card.json").read_text())


def controller(name: str) -> Factory:
  """``(base_lr, total_steps) -> optax.GradientTransformation`` of a shipped
  controller; ``base_lr=None`` keeps the rate it was trained with. The
  transformation reads the minibatch loss as ``value=`` (lrmeta's training
  loop passes it; see :func:`signals`)."""
  saved = load(name)

  def make(base_lr: float | None, total_steps: int):
    return saved.frozen(int(total_steps), learning_rate=base_lr).optimizer
  return make


def frozen(name: str, num_steps: int, *, learning_rate: float | None = None,
           num_classes: int | None = None) -> learned.Frozen:
  """A shipped controller for a run of ``num_steps``: its optimizer and the
  training-loop signals it reads (as :func:`lrmeta.learned.frozen`)."""
  return load(name).frozen(num_steps, learning_rate=learning_rate,
                           num_classes=num_classes)


def reference_inputs(steps: int = REFERENCE_STEPS, dim: int = REFERENCE_DIM
                     ) -> tuple[np.ndarray, np.ndarray]:
  """A fixed loss sequence ``[steps]`` and gradient sequence ``[steps,
  dim]``, closed form (no random numbers): the loss falls from 2.3 towards
  0.3 with a ripple, the gradients shrink and turn slowly."""
  t = np.arange(steps, dtype=np.float64)[:, None]
  k = np.arange(1, dim + 1, dtype=np.float64)[None, :]
  losses = 0.3 + 2.0 * np.exp(-4.0 * t[:, 0] / steps) + 0.05 * np.sin(t[:, 0])
  grads = np.exp(-2.0 * t / steps) * np.cos(0.05 * k * t + k)
  return losses.astype(np.float32), grads.astype(np.float32)


def reference_rates(tx: optax.GradientTransformation,
                    steps: int = REFERENCE_STEPS) -> np.ndarray:
  """The rate ``tx`` applies at each step of :func:`reference_inputs`
  (read by :func:`lrmeta.train.state.applied_learning_rate`), from
  parameters at zero."""
  losses, grads = reference_inputs(steps)
  tx = as_extra_args(tx)

  @jax.jit
  def run(losses, grads):
    params = jnp.zeros(grads.shape[1], jnp.float32)

    def step(carry, x):
      p, s = carry
      loss, g = x
      u, s = tx.update(g, s, p, value=loss)
      return (optax.apply_updates(p, u), s), applied_learning_rate(s)

    _, lrs = jax.lax.scan(step, (params, tx.init(params)), (losses, grads))
    return lrs

  return np.asarray(run(jnp.asarray(losses), jnp.asarray(grads)))


__all__ = ["PREFIX", "controller", "card", "frozen", "load", "names",
           "reference_inputs", "reference_rates"]
