"""Kill-and-resume of meta-training gives the same theta; controller files."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta.controllers.mlr_snet import init_mlr_snet_params
from lrmeta.meta import (PES, MetaCheckpointer, MetaTrainer, load_controller,
                         meta_train, save_controller)
from test_meta_estimators import THETA0, Toy


class Killed(Exception):
  pass


def _trainer():
  # PES: its state (perturbation sums, persistent runs) must resume too.
  return MetaTrainer([PES(Toy(), horizon=6, window=2, num_pairs=4,
                          sigma=0.1, num_tasks=2)],
                     meta_optimizer=optax.adam(0.05))


def _leaves(t):
  return [np.asarray(jax.random.key_data(x)) if jnp.issubdtype(
      x.dtype, jax.dtypes.prng_key) else np.asarray(x)
          for x in jax.tree.leaves(t)]


@pytest.mark.slow
def test_kill_and_resume_gives_same_theta(tmp_path):
  key, steps = jax.random.key(7), 9
  full, _ = meta_train(_trainer(), THETA0, key, steps)

  ckpt = MetaCheckpointer(str(tmp_path / "run"), save_every=2)

  def kill_at_5(state, metrics):
    if int(state.step) == 5:
      raise Killed

  with pytest.raises(Killed):
    meta_train(_trainer(), THETA0, key, steps, checkpointer=ckpt,
               callback=kill_at_5)
  assert ckpt.latest_step() == 4  # steps 5.. are lost and redone
  ckpt.close()

  resumed_ckpt = MetaCheckpointer(str(tmp_path / "run"), save_every=2)
  # A different initial theta is ignored: the checkpoint wins.
  resumed, hist = meta_train(_trainer(),
                             jax.tree.map(jnp.zeros_like, THETA0), key,
                             steps, checkpointer=resumed_ckpt)
  assert len(hist["meta_loss"]) == steps - 4
  assert int(resumed.step) == steps
  for a, b in zip(_leaves(full), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  assert resumed_ckpt.latest_step() == steps


def test_controller_roundtrip(tmp_path):
  theta = init_mlr_snet_params(jax.random.key(0), hidden=8)
  cfg = {"controller": "mlr_snet", "hidden": 8, "num_classes": 10}
  save_controller(str(tmp_path / "ctl"), theta, cfg)
  back, cfg2 = load_controller(str(tmp_path / "ctl"))
  assert cfg2 == cfg
  for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(back)):
    np.testing.assert_array_equal(a, b)
  assert jax.tree.structure(theta) == jax.tree.structure(back)
