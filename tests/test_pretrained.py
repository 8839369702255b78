"""Shipped pretrained controllers: each loads from the package alone (no
results folder, no network), is small, and reproduces its card's reference
rate trajectory; ``pretrained:NAME`` works as a method."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lrmeta import pretrained
from lrmeta.experiments.optim import build_method

NAMES = pretrained.names()


def test_at_least_three_ship():
  assert {"learned_schedule_sgd", "learned_schedule_adam",
          "learned_schedule_adam_aware"} <= set(NAMES)


def test_aware_schedule_is_the_adam_one_plus_its_context():
  """``learned_schedule_adam_aware`` holds ``learned_schedule_adam``'s knots
  and feedback as shipped; with its context weights set to zero it applies
  that controller's reference rates exactly, and with them it does not."""
  import jax
  from lrmeta import learned
  aware, adam = (pretrained.load(n) for n in ("learned_schedule_adam_aware",
                                              "learned_schedule_adam"))
  assert aware.config["context"] and aware.config["optimizer"] == "adam"
  np.testing.assert_array_equal(aware.theta["knots"], adam.theta["knots"])
  jax.tree.map(np.testing.assert_array_equal, aware.theta["feedback"],
               adam.theta["feedback"])
  zero = {**aware.theta, "context": jax.tree.map(
      np.zeros_like, aware.theta["context"])}
  plain = pretrained.reference_rates(
      adam.frozen(200, learning_rate=0.002).optimizer)
  for theta, same in ((zero, True), (aware.theta, False)):
    saved = learned.SavedController(aware.controller, theta, aware.config)
    rates = pretrained.reference_rates(
        saved.frozen(200, learning_rate=0.002).optimizer)
    assert np.array_equal(rates, plain) == same


@pytest.mark.parametrize("name", NAMES)
def test_reproduces_its_card(name):
  card = pretrained.card(name)
  ref = card["reference"]
  tx = pretrained.controller(name)(ref["base_lr"], ref["total_steps"])
  rates = pretrained.reference_rates(tx, ref["total_steps"])
  np.testing.assert_allclose(rates, ref["rates"], rtol=1e-5, atol=0)
  # A meta-trained schedule, not the untrained constant base rate.
  assert rates.max() / rates.min() > 1.5
  for key in ("trained_on", "command", "commit", "heldout"):
    assert card[key]
  assert card["heldout"]["rows"]


@pytest.mark.parametrize("name", NAMES)
def test_base_rate_scales_the_trajectory(name):
  ref = pretrained.card(name)["reference"]
  make = pretrained.controller(name)
  one = pretrained.reference_rates(make(ref["base_lr"], 200))
  two = pretrained.reference_rates(make(2 * ref["base_lr"], 200))
  # The features are scale-free, but the run differs once the rate does;
  # the first step sees the same losses.
  assert two[0] == pytest.approx(2 * one[0], rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_small(name):
  folder = pretrained._folder(name)  # pylint: disable=protected-access
  assert len(folder.joinpath("weights.json").read_bytes()) < 20_000


def test_loads_outside_the_repository_without_network(tmp_path):
  code = ("import json, lrmeta.pretrained as p;"
          "print(json.dumps({n: float(p.reference_rates("
          "p.controller(n)(None, 50))[-1]) for n in p.names()}))")
  env = {**os.environ, "no_proxy": "", "http_proxy": "http://127.0.0.1:9",
         "https_proxy": "http://127.0.0.1:9"}
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, check=True, timeout=300)
  got = json.loads(out.stdout.strip().splitlines()[-1])
  assert set(got) == set(NAMES)
  assert all(np.isfinite(v) and v > 0 for v in got.values())


def test_unknown_name_lists_the_shipped_ones():
  with pytest.raises(ValueError, match="learned_schedule_sgd"):
    pretrained.load("nope")


def test_as_a_method():
  m = build_method("pretrained:learned_schedule_sgd", num_steps=100)
  assert not m.tune
  assert m.make_optimizer(None) is not None


def test_untrained_adam_schedule_is_adam():
  import jax
  import jax.numpy as jnp
  import optax
  from lrmeta.controllers import (init_learned_schedule_params,
                                  learned_schedule_adam)
  tx = learned_schedule_adam(init_learned_schedule_params(jax.random.key(0)),
                             0.002, 50)
  ref = optax.adam(0.002)
  p = jnp.ones(3)
  s, r = tx.init(p), ref.init(p)
  for i in range(5):
    g = jnp.asarray([0.1, -0.3, 2.0]) * (i + 1)
    u, s = tx.update(g, s, p, value=jnp.float32(1.0 + i))
    v, r = ref.update(g, r, p)
    np.testing.assert_array_equal(u, v)
