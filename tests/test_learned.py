"""The learned-controller protocol and store: every kind saves, loads and
rebuilds the same transformation; damaged or unknown folders are clear
errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from controller_contract import check_controller_contract
from lrmeta import learned
from lrmeta.controllers.rl_policy import PolicyConfig
from lrmeta.learned import mlr_snet as mlr
from lrmeta.learned import rl_policy as rl

PCFG = PolicyConfig(steps_per_action=5, total_steps=20, features="basic",
                    hidden=(8,))
CONFIGS = {
    "mlr_snet": mlr.config(hidden=8, num_classes=10, gamma=None,
                           momentum=0.9, weight_decay=5e-4,
                           trained_on="test"),
    "rl_policy": {"controller": "rl_policy", "policy": rl.policy_dict(PCFG),
                  "base_lr": 0.05, "momentum": 0.9, "val_batch_size": 32,
                  "keep_bias": 1.0},
}


def _params():
  return {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([0.3])}


def _rates(opt, steps=12):
  """The rates ``opt`` applies on a quadratic, one per step."""
  from lrmeta.train import applied_learning_rate  # pylint: disable=import-outside-toplevel
  p, s, out = _params(), opt.init(_params()), []

  @jax.jit
  def step(p, s):
    loss, g = jax.value_and_grad(lambda q: sum(
        jnp.sum(x ** 2) for x in jax.tree.leaves(q)))(p)
    u, s = opt.update(g, s, p, value=loss, val_value=loss)
    return optax.apply_updates(p, u), s
  for _ in range(steps):
    p, s = step(p, s)
    out.append(float(applied_learning_rate(s)))
  return np.asarray(out)


def test_registry_lists_kinds_that_implement_the_protocol():
  assert set(learned.kinds()) >= {"mlr_snet", "rl_policy"}
  for kind in learned.kinds():
    assert isinstance(learned.get(kind), learned.LearnedController)
  with pytest.raises(ValueError, match="unknown learned controller 'nope'"):
    learned.get("nope")


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_save_load_reapply_gives_the_same_rates(kind, tmp_path):
  ctl = learned.get(kind)
  config = CONFIGS[kind]
  theta = ctl.init(jax.random.key(3), config)
  before = _rates(ctl.optimizer(theta, config, 20))
  learned.save(str(tmp_path / kind), theta, config)
  saved = learned.load(str(tmp_path / kind))
  assert saved.kind == kind and saved.config["controller"] == kind
  chex_equal = jax.tree.map(lambda a, b: np.array_equal(a, b), theta,
                            saved.theta)
  assert all(jax.tree.leaves(chex_equal))
  frozen = learned.frozen(str(tmp_path / kind), 20)
  np.testing.assert_array_equal(_rates(frozen.optimizer), before)
  assert callable(frozen.signals)
  assert np.all(before > 0) and np.all(np.isfinite(before))


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_rebuilt_controllers_pass_the_controller_contract(kind):
  ctl = learned.get(kind)
  theta = ctl.init(jax.random.key(0), CONFIGS[kind])
  check_controller_contract(lambda: ctl.optimizer(theta, CONFIGS[kind], 20))


def test_rl_policy_base_rate_override_and_decision_scaling():
  ctl = learned.get("rl_policy")
  theta = ctl.init(jax.random.key(0), CONFIGS["rl_policy"])
  # The first decision comes after a window: until then the base rate holds.
  r = _rates(ctl.optimizer(theta, CONFIGS["rl_policy"], 20,
                           learning_rate=0.2), steps=3)
  np.testing.assert_allclose(r, 0.2, rtol=1e-6)
  # A 4x longer budget keeps the number of decisions: 4x longer windows.
  assert rl.scaled_policy_config(PCFG, 80).steps_per_action == 20
  assert rl.scaled_policy_config(PCFG, 80).num_decisions == PCFG.num_decisions


def test_mlr_snet_snapshots_switch_at_their_fractions(tmp_path):
  ctl = learned.get("mlr_snet")
  config = {**CONFIGS["mlr_snet"], "switch_fractions": [0.5]}
  a = ctl.init(jax.random.key(0), config)
  b = jax.tree.map(lambda x: x + 0.05, a)
  learned.save(str(tmp_path / "snap"), {"s0": a, "s1": b}, config)
  both = _rates(learned.frozen(str(tmp_path / "snap"), 12).optimizer)
  only_a = _rates(ctl.optimizer(a, {**config, "switch_fractions": []}, 12))
  # Same rates up to the switch at step 6, different after it.
  np.testing.assert_array_equal(both[:6], only_a[:6])
  assert not np.allclose(both[6:], only_a[6:])
  assert mlr.switch_steps([1 / 3, 2 / 3], 30) == (10, 20)
  with pytest.raises(ValueError, match="too few"):
    mlr.switch_steps([0.4, 0.5], 2)


def test_missing_damaged_and_unknown_folders_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    learned.load(str(tmp_path / "nowhere"))
  broken = tmp_path / "broken"
  broken.mkdir()
  (broken / "config").mkdir()
  with pytest.raises(ValueError, match="not a complete saved controller"):
    learned.load(str(broken))
  with pytest.raises(ValueError, match="unknown learned controller"):
    learned.save(str(tmp_path / "x"), {"w": jnp.zeros(2)},
                 {"controller": "nope"})
