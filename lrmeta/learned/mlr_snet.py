"""MLR-SNet as a learned controller: config, rebuild, snapshots, import.

A saved MLR-SNet config holds the SGD settings (momentum, weight decay), the
LSTM's hidden size and gate-MLP ``width``, the cell ``semantics``
(``"meta_test"`` or ``"meta_train"``, see
:mod:`lrmeta.controllers.mlr_snet`), the ``init`` that made the initial
theta, the number of classes of the meta-training task (for the rate bound
``gamma``), a fixed ``gamma`` or ``None``, where ``gamma``'s loss comes from
(``gamma_from``, ``gamma_examples``), and the snapshot switches: when
``switch_fractions`` is non-empty, ``theta`` holds snapshots
``{"s0": ..., "s1": ..., ...}`` switched at those fractions of the budget,
or, with ``switch_rule == "thirds"``, at ``n // 3`` and ``2 * (n // 3)`` of a
budget of ``n`` epochs (``steps_per_epoch``) or steps, as the authors'
``meta-test/meta_test.py`` lines 67 and 79 do.

Configs saved before ``width``, ``semantics`` and ``init`` were recorded
describe lrmeta's earlier cell and load as such: gate-MLP width = hidden,
``"meta_train"`` semantics, ``"uniform"`` init (:data:`LEGACY`).

:func:`from_torch` imports the authors' published meta-trained nets (three
PyTorch state dicts) without torch.

References:
  Shu, Zhu, Zhao, Meng, Xu, "MLR-SNet: Transferable LR Schedules for
  Heterogeneous Tasks", IEEE TPAMI 2022 (arXiv:2007.14546).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import jax
import numpy as np
import optax

from lrmeta.controllers.mlr_snet import (GAMMA_FROM, INITS, SEMANTICS,
                                         default_width, init_mlr_snet_params,
                                         mlr_snet_sgd)
from lrmeta.learned import torch_pickle
from lrmeta.learned.base import register
from lrmeta.train.state import SignalsFn, loss_signal, with_split_loss

NAME = "mlr_snet"
SWITCH_RULES = ("fractions", "thirds")
# How a config saved without these keys is read (lrmeta's earlier cell).
LEGACY = {"semantics": "meta_train", "init": "uniform"}


def config(*, hidden: int, num_classes: int, gamma: float | None,
           momentum: float, weight_decay: float,
           switch_fractions: Sequence[float] = (),
           width: int | None = None, semantics: str = "meta_test",
           init: str = "torch", gamma_from: str = "minibatch",
           gamma_examples: int | None = None,
           switch_rule: str = "fractions",
           steps_per_epoch: int | None = None, **info: Any) -> dict:
  """A saved-controller config; ``info`` (e.g. ``trained_on``) is kept as
  is. ``width`` ``None`` is ``hidden // 2``; ``gamma_examples`` ``None``
  with ``gamma_from == "split"`` uses the whole training split."""
  if semantics not in SEMANTICS or init not in INITS or (
      gamma_from not in GAMMA_FROM) or switch_rule not in SWITCH_RULES:
    raise ValueError(f"mlr_snet config: semantics {semantics!r}, init "
                     f"{init!r}, gamma_from {gamma_from!r} or switch_rule "
                     f"{switch_rule!r} unknown")
  return {"controller": NAME, "hidden": int(hidden),
          "width": int(default_width(hidden) if width is None else width),
          "semantics": semantics, "init": init,
          "num_classes": int(num_classes),
          "gamma": float(gamma) if gamma else None,
          "gamma_from": gamma_from,
          "gamma_examples": None if gamma_examples is None
          else int(gamma_examples),
          "momentum": float(momentum), "weight_decay": float(weight_decay),
          "switch_fractions": [float(f) for f in switch_fractions],
          "switch_rule": switch_rule,
          "steps_per_epoch": None if steps_per_epoch is None
          else int(steps_per_epoch), **info}


def switch_steps(fractions: Sequence[float], num_steps: int, *,
                 rule: str = "fractions",
                 steps_per_epoch: int | None = None) -> tuple[int, ...]:
  """The steps at which snapshots switch for a run of ``num_steps``.

  ``rule == "fractions"``: ``int(f * num_steps)`` for each fraction.
  ``rule == "thirds"`` (the authors' meta-test, ``meta_test.py`` lines 67
  and 79): with ``n`` the budget in epochs of ``steps_per_epoch`` steps (or
  in steps when it is ``None``), switch at the start of units ``n // 3`` and
  ``2 * (n // 3)``.
  """
  if not fractions:
    return ()
  if rule == "thirds":
    unit = steps_per_epoch or 1
    third = (num_steps // unit) // 3
    steps = (third * unit, 2 * third * unit)
  else:
    steps = tuple(max(1, int(f * num_steps)) for f in fractions)
  if steps[0] < 1 or len(set(steps)) < len(steps):
    raise ValueError(f"{num_steps} steps are too few to switch snapshots at "
                     f"{list(fractions)} ({rule})")
  return steps


def snapshots(theta: Any) -> list[Any]:
  """The snapshot list of a saved ``{"s0": ..., "s1": ...}`` theta."""
  return [theta[f"s{i}"] for i in range(len(theta))]


def _get(config: dict, key: str):  # pylint: disable=redefined-outer-name
  """``config[key]``, or what a config saved before the key existed
  means."""
  if key in config:
    return config[key]
  if key == "width":
    return config["hidden"]
  return LEGACY.get(key)


class MLRSNet:
  """The :class:`~lrmeta.learned.LearnedController` of MLR-SNet."""

  name = NAME

  def init(self, key: jax.Array, config: dict) -> Any:  # pylint: disable=redefined-outer-name
    return init_mlr_snet_params(key, config["hidden"],
                                width=_get(config, "width"),
                                init=_get(config, "init"))

  def switch_steps(self, config: dict, num_steps: int) -> tuple[int, ...]:  # pylint: disable=redefined-outer-name
    """The switch steps of ``config`` for a run of ``num_steps``."""
    return switch_steps(config.get("switch_fractions") or [], num_steps,
                        rule=config.get("switch_rule") or "fractions",
                        steps_per_epoch=config.get("steps_per_epoch"))

  def optimizer(self, theta: Any, config: dict, num_steps: int, *,  # pylint: disable=redefined-outer-name
                learning_rate: float | None = None,
                num_classes: int | None = None
                ) -> optax.GradientTransformationExtraArgs:
    """``mlr_snet_sgd`` from a saved config.

    ``theta`` is one parameter set, a list of snapshots, or the saved
    ``{"s0": ...}`` form; snapshots switch at ``config["switch_fractions"]``
    of ``num_steps``. The LSTM sets the rate itself, so ``learning_rate`` is
    ignored; ``num_classes`` (default: the meta-training task's) enters the
    rate bound ``gamma``.
    """
    del learning_rate
    switch = self.switch_steps(config, num_steps)
    if switch:
      theta = snapshots(theta) if isinstance(theta, dict) else list(theta)
    return mlr_snet_sgd(
        theta, config["momentum"], weight_decay=config["weight_decay"],
        num_classes=num_classes or config["num_classes"],
        gamma=config.get("gamma"), switch_steps=switch,
        semantics=_get(config, "semantics"),
        gamma_from=config.get("gamma_from") or "minibatch")

  def signals(self, config: dict, num_steps: int) -> SignalsFn:  # pylint: disable=redefined-outer-name
    """The minibatch loss; with ``gamma_from == "split"`` also the loss
    over the training split at step 0 and at each switch."""
    if config.get("gamma_from") == "split" and not config.get("gamma"):
      return with_split_loss((0,) + self.switch_steps(config, num_steps),
                             "train", config.get("gamma_examples"))
    return loss_signal


CONTROLLER = register(MLRSNet())


# The authors' state-dict keys (meta-test/model/network.py lines 126-135 and
# 163) and where each goes in lrmeta's theta; PyTorch stores a Linear's
# weight [out, in], lrmeta [in, out].
TORCH_KEYS = {
    "layer1.fc_i2h.0.weight": ("i2h", "w1"), "layer1.fc_i2h.0.bias": ("i2h", "b1"),
    "layer1.fc_i2h.2.weight": ("i2h", "w2"), "layer1.fc_i2h.2.bias": ("i2h", "b2"),
    "layer1.fc_h2h.0.weight": ("h2h", "w1"), "layer1.fc_h2h.0.bias": ("h2h", "b1"),
    "layer1.fc_h2h.2.weight": ("h2h", "w2"), "layer1.fc_h2h.2.bias": ("h2h", "b2"),
    "layer3.weight": ("out", "w"), "layer3.bias": ("out", "b"),
}


def theta_from_state_dict(state_dict: dict) -> dict:
  """lrmeta's theta from the authors' one-layer MLR-SNet state dict.

  Exact: each weight is transposed, biases are copied. The gate blocks stay
  in the authors' order; the cell's ``semantics`` reads them (the published
  nets need ``"meta_test"``).

  Raises:
    ValueError: keys or shapes not those of ``MLRSNet(1, hidden)``.
  """
  keys = set(state_dict)
  if keys != set(TORCH_KEYS):
    raise ValueError(f"not a one-layer MLR-SNet state dict: missing "
                     f"{sorted(set(TORCH_KEYS) - keys)}, unexpected "
                     f"{sorted(keys - set(TORCH_KEYS))}")
  theta: dict = {"i2h": {}, "h2h": {}, "out": {}}
  for key, (group, name) in TORCH_KEYS.items():
    x = np.asarray(state_dict[key], np.float32)
    theta[group][name] = np.ascontiguousarray(x.T) if x.ndim == 2 else x
  hidden = theta["out"]["w"].shape[0]
  width = theta["i2h"]["w1"].shape[1]
  want = {"i2h": {"w1": (1, width), "b1": (width,),
                  "w2": (width, 4 * hidden), "b2": (4 * hidden,)},
          "h2h": {"w1": (hidden, width), "b1": (width,),
                  "w2": (width, 4 * hidden), "b2": (4 * hidden,)},
          "out": {"w": (hidden, 1), "b": (1,)}}
  for group, shapes in want.items():
    for name, shape in shapes.items():
      if theta[group][name].shape != shape:
        raise ValueError(f"{group}.{name}: shape {theta[group][name].shape}, "
                         f"expected {shape} for hidden {hidden}, width "
                         f"{width}")
  return theta


def sha256(path: str) -> str:
  """The SHA-256 hex digest of a file."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def from_torch(paths: Sequence[str], *, semantics: str = "meta_test",
               num_classes: int = 10, momentum: float = 0.0,
               weight_decay: float = 5e-4, gamma_from: str = "minibatch",
               gamma_examples: int | None = None,
               steps_per_epoch: int | None = None) -> tuple[dict, dict]:
  """Imports the authors' meta-trained nets as a saved-controller theta and
  config, with their meta-test protocol.

  The authors publish three snapshots of one meta-training run
  (``meta-test/mlr_snet 1.pth``, ``mlr_snet 100.pth``, ``mlr_snet 200.pth``,
  the nets after epochs 1, 100 and 200) and run them as
  ``meta-test/meta_test.py`` does: the first snapshot from the start, the
  second from epoch ``n // 3`` and the third from ``2 * (n // 3)`` of an
  ``n``-epoch budget (lines 60-89), the LSTM state carried across (line 92:
  ``reset_lstm(keep_states=True)`` after the first step), plain SGD with
  momentum 0 and weight decay 5e-4 (lines 18-19), ``gamma`` recomputed at
  each switch. The files are read without torch
  (:mod:`lrmeta.learned.torch_pickle`).

  Args:
    paths: one ``.pth`` state dict per snapshot, in order of use (one file:
      no switching).
    semantics: the cell that runs them: ``"meta_test"`` (``network.py``,
      the authors' meta-test) or ``"meta_train"`` (``module.py``).
    num_classes: classes of the meta-training task (CIFAR-10: 10).
    momentum, weight_decay: the SGD the rate drives.
    gamma_from: ``"minibatch"`` (the first loss the controller sees, the
      fallback when no training data is at hand) or ``"split"`` (the loss
      over the training split before training and at each switch, the
      authors' choice; ``gamma_examples`` limits it).
    gamma_examples: examples of the training split for ``"split"``
      (``None``: all).
    steps_per_epoch: count the budget in epochs of this many steps for the
      switches (``None``: in steps).

  Returns:
    ``(theta, config)`` for :func:`lrmeta.learned.save`; ``config`` records
    each file's SHA-256 under ``"imported_from"``.
  """
  if not paths:
    raise ValueError("from_torch: no files given")
  thetas = [theta_from_state_dict(torch_pickle.load(p)) for p in paths]
  shapes = [jax.tree.map(np.shape, t) for t in thetas]
  if any(s != shapes[0] for s in shapes):
    raise ValueError("from_torch: the snapshots differ in shape")
  hidden = thetas[0]["out"]["w"].shape[0]
  width = thetas[0]["i2h"]["w1"].shape[1]
  n = len(thetas)
  if n not in (1, 3):
    raise ValueError(f"from_torch: give 1 or 3 snapshots, got {n}")
  cfg = config(
      hidden=hidden, width=width, semantics=semantics, init="torch",
      num_classes=num_classes, gamma=None, momentum=momentum,
      weight_decay=weight_decay,
      switch_fractions=(1 / 3, 2 / 3) if n == 3 else (),
      switch_rule="thirds", steps_per_epoch=steps_per_epoch,
      gamma_from=gamma_from, gamma_examples=gamma_examples,
      trained_on="the authors' published nets (ResNet-18 / CIFAR-10)",
      imported_from=[{"file": str(p).rsplit("/", 1)[-1], "sha256": sha256(p)}
                     for p in paths])
  theta = thetas[0] if n == 1 else {f"s{i}": t for i, t in enumerate(thetas)}
  return theta, cfg
