"""The baseline schedules: closed forms of linear decay and WSD at
hand-picked steps (step 0, the start of the decay, the last step, past the
budget), warm-up, traced peaks, the registry's `wsd` policy (spec and packed
form), method strings, and the protocol's default set."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrmeta import protocol
from lrmeta.experiments.optim import build_method
from lrmeta.schedules import (BASELINES, baseline_schedule, pack_spec,
                              packed_schedule, parse_baseline, parse_spec,
                              policy, schedule_from_spec)

T = 100


def _at(sched, steps):
  return [float(sched(t)) for t in steps]


def test_linear_decays_from_the_peak_to_zero_over_the_budget():
  f = baseline_schedule("linear", 0.4, T)
  # 0.4 (1 - t/T): step 0 is the peak, the last step (T-1) is 0.4/T.
  np.testing.assert_allclose(_at(f, (0, 1, 50, 99, 100, 150)),
                             [0.4, 0.396, 0.2, 0.004, 0.0, 0.0],
                             rtol=1e-5, atol=1e-8)
  # Warm-up over 10 % (10 steps), then linear to 0 at T over 90 steps.
  w = baseline_schedule("linear", 0.4, T, warmup_fraction=0.1)
  np.testing.assert_allclose(_at(w, (0, 5, 10, 55, 99, 100, 120)),
                             [0.0, 0.2, 0.4, 0.2, 0.4 / 90, 0.0, 0.0],
                             rtol=1e-5, atol=1e-8)


def test_wsd_holds_the_peak_then_decays_over_the_last_fraction():
  f = baseline_schedule("wsd", 0.4, T)  # decay over the last 20 steps
  np.testing.assert_allclose(
      _at(f, (0, 50, 79, 80, 81, 90, 99, 100, 1000)),
      [0.4, 0.4, 0.4, 0.4, 0.38, 0.2, 0.02, 0.0, 0.0], rtol=1e-5, atol=1e-8)
  g = baseline_schedule("wsd", 1.0, T, decay_fraction=0.3,
                        warmup_fraction=0.1)
  np.testing.assert_allclose(_at(g, (0, 5, 10, 69, 70, 85, 99, 100)),
                             [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 1 / 30, 0.0],
                             rtol=1e-5, atol=1e-8)
  # No decay fraction: the peak to the last step, 0 from the budget on.
  h = baseline_schedule("wsd", 1.0, T, decay_fraction=0.0)
  assert _at(h, (0, 99, 100)) == [1.0, 1.0, 0.0]


def test_a_traced_peak_vmaps_and_every_baseline_ends_at_zero():
  for name in BASELINES:
    f = jax.jit(jax.vmap(lambda lr, n=name: baseline_schedule(n, lr, T)(50)))
    one = float(baseline_schedule(name, 1.0, T)(50))
    np.testing.assert_allclose(f(jnp.array([0.1, 0.3])),
                               [0.1 * one, 0.3 * one], rtol=1e-6)
  for name in ("cosine", "warmup_cosine", "linear", "wsd"):
    assert float(baseline_schedule(name, 1.0, T)(T)) == pytest.approx(0.0,
                                                                      abs=1e-7)


def test_options_are_checked():
  assert parse_baseline("wsd(decay_fraction=0.3)") == (
      "wsd", {"decay_fraction": 0.3, "warmup_fraction": 0.0})
  assert parse_baseline("cosine") == ("cosine", {})
  for bad, match in (("wsd(decay_fraction=1.5)", r"\[0, 1\]"),
                     ("wsd(decay_fraction=0.9, warmup_fraction=0.2)", "<= 1"),
                     ("cosine(decay_fraction=0.2)", "not a baseline"),
                     ("triangle", "not a baseline")):
    with pytest.raises(ValueError, match=match):
      parse_baseline(bad)
  with pytest.raises(ValueError, match="fills"):
    baseline_schedule("linear", 1.0, 1, warmup_fraction=0.5)


def test_registry_wsd_matches_the_baseline_in_every_form():
  spec = parse_spec("wsd(k0=0.4, l=100, p=0.2)")
  ref = baseline_schedule("wsd", 0.4, T)
  steps = (0, 79, 80, 90, 99, 100, 130)
  for sched in (schedule_from_spec(spec), policy("wsd", k0=0.4, l=100),
                packed_schedule(pack_spec(spec))):
    np.testing.assert_allclose(_at(sched, steps), _at(ref, steps),
                               rtol=1e-5, atol=1e-8)
  with pytest.raises(ValueError, match="decay fraction"):
    policy("wsd", k0=0.4, l=100, p=2.0)


def test_method_strings_and_the_protocol_defaults():
  assert protocol.DEFAULT_BASELINES == ("constant", "step", "cosine",
                                        "warmup_cosine", "linear", "wsd")
  m = build_method("wsd(decay_fraction=0.5)", learning_rate=0.2,
                   num_steps=10)
  assert not m.tune and m.lr == 0.2
  tuned = protocol.schedule_method("wsd(decay_fraction=0.5)", 10)
  assert tuned.tune
  # The LRBench policy named linear still parses as a policy spec.
  build_method("linear(k0=0.1, k1=0.0, l=10)", num_steps=10)
  with pytest.raises(ValueError, match="decay_fraction"):
    build_method("wsd(decay_fraction=2.0)", num_steps=10)
  assert set(protocol.family_baselines()) == set(BASELINES)
