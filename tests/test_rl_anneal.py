"""Action spaces that can anneal: the WSD base and the late-cut measure."""

import jax.numpy as jnp
import numpy as np

from lrmeta.controllers.rl_policy import PolicyConfig, base_factor
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
