"""Orbax checkpoints of meta-training, and of trained controllers.

:class:`MetaCheckpointer` saves a :class:`~lrmeta.meta.outer.MetaState`
(theta, meta-optimizer state, estimator states with PES accumulators and
inner runs, PRNG key, step) every ``save_every`` meta-steps; resuming from
the latest checkpoint replays exactly the steps an uninterrupted run would
have taken, because every random draw is a function of the saved key and
step. PRNG key arrays are stored as their raw ``uint32`` data and rewrapped
on restore from the template's key type.

:func:`save_controller` / :func:`load_controller` store a frozen controller
(``theta`` plus a JSON config naming how to rebuild it) for transfer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _is_key(x) -> bool:
  return isinstance(x, jax.Array) and jax.dtypes.issubdtype(
      x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree: Any) -> Any:
  return jax.tree.map(
      lambda x: np.asarray(jax.random.key_data(x)) if _is_key(x)
      else np.asarray(x), tree)


def _from_saved(saved: Any, template: Any) -> Any:
  def back(s, t):
    if _is_key(t):
      return jax.random.wrap_key_data(np.asarray(s),
                                      impl=jax.random.key_impl(t))
    return jax.numpy.asarray(s, dtype=t.dtype)
  return jax.tree.map(back, saved, template)


class TreeCheckpointer:
  """Keeps the latest ``max_to_keep`` orbax checkpoints of a pytree.

  Typed PRNG keys are saved as raw data and rewrapped on restore; an optional
  JSON ``history.json`` beside the checkpoints keeps per-step metrics so a
  resumed run reports its whole history. Saves are synchronous: a run killed
  right after :meth:`save` returns keeps the checkpoint.
  """

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self):
    return self._manager.all_steps()

  def save(self, step: int, tree: Any, history: list | None = None) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(_to_saveable(tree)))
    self._manager.wait_until_finished()
    if history is not None:
      with open(os.path.join(self.directory, "history.json"), "w") as f:
        json.dump(_jsonable(history), f)

  def restore(self, template: Any) -> tuple[Any, list]:
    """``(tree, history)`` of the latest checkpoint, structured like
    ``template``; raises if there is none."""
    step = self._manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype),
        _to_saveable(template))
    saved = self._manager.restore(step,
                                  args=ocp.args.StandardRestore(abstract))
    path = os.path.join(self.directory, "history.json")
    history = []
    if os.path.exists(path):
      with open(path) as f:
        history = json.load(f)
    return _from_saved(saved, template), history

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


class MetaCheckpointer(TreeCheckpointer):
  """Saves meta-training state every ``save_every`` steps; restores the latest.

  Args:
    directory: checkpoint directory (created if missing).
    save_every: save when ``state.step % save_every == 0``.
    max_to_keep: checkpoints kept on disk.
  """

  def __init__(self, directory: str, save_every: int, max_to_keep: int = 2):
    if save_every <= 0:
      raise ValueError(f"save_every must be positive, got {save_every}")
    super().__init__(directory, max_to_keep)
    self.save_every = save_every

  def maybe_save(self, state, force: bool = False) -> bool:
    """Saves ``state`` if its step is a multiple of ``save_every`` (or
    ``force``); returns whether it saved."""
    step = int(state.step)
    if not force and step % self.save_every:
      return False
    if step in self.all_steps():
      return False
    self.save(step, state)
    return True

  def restore_latest(self, template):
    """The latest saved state (structured like ``template``), or ``None``."""
    if self.latest_step() is None:
      return None
    return self.restore(template)[0]


def _jsonable(x):
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.ndarray, jax.Array)):
    return np.asarray(x).tolist()
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  return x


def save_controller(directory: str, theta: Any, config: dict) -> None:
  """Saves a frozen controller: ``theta`` and a JSON-serialisable config
  (e.g. ``{"controller": "mlr_snet", "hidden": 50, "num_classes": 10,
  "trained_on": "fashion_mnist/small_cnn", "meta_steps": 300}``)."""
  directory = os.path.abspath(directory)
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
    ckptr.save(directory, args=ocp.args.Composite(
        theta=ocp.args.StandardSave(_to_saveable(theta)),
        config=ocp.args.JsonSave(config)), force=True)


def load_controller(directory: str) -> tuple[Any, dict]:
  """Returns ``(theta, config)`` saved by :func:`save_controller`."""
  directory = os.path.abspath(directory)
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
    out = ckptr.restore(directory, args=ocp.args.Composite(
        theta=ocp.args.StandardRestore(), config=ocp.args.JsonRestore()))
  theta = jax.tree.map(jax.numpy.asarray, out["theta"])
  return theta, dict(out["config"])


__all__ = ["MetaCheckpointer", "TreeCheckpointer", "load_controller", "save_controller"]
