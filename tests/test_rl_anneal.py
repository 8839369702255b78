"""Action spaces that can anneal: the WSD base, decisions that densify
towards the end of the budget, and the late-cut measure."""

import jax.numpy as jnp
import numpy as np
import pytest

from lrmeta.controllers.rl_policy import (PolicyConfig, base_factor,
                                          decision_bounds, is_decision_step,
                                          is_window_end)
from lrmeta.rl.family import late_cut
from lrmeta.schedules.baselines import unit_schedule


def test_wsd_base_holds_then_decays_like_the_wsd_baseline():
  cfg = PolicyConfig(steps_per_action=10, total_steps=100,
                     base_schedule="wsd")
  got = np.array([float(base_factor(cfg, jnp.asarray(t))) for t in range(100)])
  want = np.array([float(unit_schedule("wsd", 100)(t)) for t in range(100)])
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert got[:80].min() == 1.0 and got[-1] < 0.1


def test_late_cut_ratio():
  lr = np.ones((3, 100))
  lr[0, 90:] = 0.1                           # cut 10x in the last tenth
  lr[1] = np.linspace(1.0, 0.0, 100)         # linear decay: 0.046 / 0.3
  np.testing.assert_allclose(late_cut(lr)[0], 0.1)
  assert late_cut(lr)[1] < 1 / 3 < late_cut(lr)[2] == 1.0


def test_densify_places_half_the_decisions_in_the_last_30_percent():
  uniform = PolicyConfig(steps_per_action=20, total_steps=400)
  dense = PolicyConfig(steps_per_action=20, total_steps=400,
                       decision_spacing="densify")
  np.testing.assert_array_equal(decision_bounds(uniform),
                                np.arange(0, 401, 20))
  np.testing.assert_array_equal(
      decision_bounds(dense),
      list(range(0, 281, 28)) + list(range(292, 401, 12)))
  assert dense.num_decisions == uniform.num_decisions == 20
  # A budget of 20 steps in 4 decisions: windows of 7, 7, 3, 3.
  small = PolicyConfig(steps_per_action=5, total_steps=20,
                       decision_spacing="densify")
  np.testing.assert_array_equal(decision_bounds(small), [0, 7, 14, 17, 20])
  starts = [int(t) for t in range(25) if is_decision_step(small, t)]
  ends = [int(t) for t in range(25) if is_window_end(small, t)]
  assert starts == [0, 7, 14, 17] and ends == [6, 13, 16, 19]
  with pytest.raises(ValueError, match="empty window"):
    decision_bounds(PolicyConfig(steps_per_action=1, total_steps=20,
                                 decision_spacing="densify"))
