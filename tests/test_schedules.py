"""Every policy against its formula, its phase, optax, jit/scan/vmap, specs."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrmeta.schedules as S
from lrmeta.schedules import policies as P
from lrmeta.train import applied_learning_rate
from tests.controller_contract import check_controller_contract

K0, K1, G, L = 0.01, 0.1, 0.99, 10.0
PI = math.pi


def _tri(x):  # LRBench's (2/pi)|asin(sin(pi x))|, written as they wrote it
  return 2 / PI * abs(math.asin(math.sin(PI * x)))


def _u(t, l):
  return -t / l - math.floor(-t / l)


# Reference formulas in plain Python, transcribed from LRBench's definitions
# (lr/LRfunctions.py) with l the half period; poly uses k0 as the start value.
REF = {
    "fix": (dict(k0=K0), lambda t: K0),
    "step": (dict(k0=K1, gamma=0.5, l=L), lambda t: K1 * 0.5 ** math.floor(t / L)),
    "nstep": (dict(k0=K1, gamma=0.1, l=[5, 12]),
              lambda t: K1 * 0.1 ** ((t >= 5) + (t >= 12))),
    "exp": (dict(k0=K1, gamma=G), lambda t: K1 * G ** t),
    "inv": (dict(k0=K1, gamma=0.1, p=0.75), lambda t: K1 * (1 + 0.1 * t) ** -0.75),
    "poly": (dict(k0=K1, k1=K0, p=2.0, l=20.0),
             lambda t: (K1 - K0) * (1 - min(t, 20) / 20) ** 2 + K0),
    "sig": (dict(k0=K1, gamma=-0.2, l=15.0),
            lambda t: K1 / (1 + math.exp(0.2 * (t - 15)))),
    "tri": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * _tri(t / (2 * L)) + K0),
    "tri2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * _tri(t / (2 * L))
             / 2 ** math.floor(t / (2 * L)) + K0),
    "triexp": (dict(k0=K0, k1=K1, gamma=G, l=L),
               lambda t: (K1 - K0) * _tri(t / (2 * L)) * G ** t + K0),
    "dtri": (dict(k0=K0, k1=K1, l=L),
             lambda t: (K1 - K0) * _tri((t + L) / (2 * L)) + K0),
    "dtri2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * _tri((t + L) / (2 * L))
              / 2 ** math.floor((t + L) / (2 * L)) + K0),
    "dtriexp": (dict(k0=K0, k1=K1, gamma=G, l=L),
                lambda t: (K1 - K0) * _tri((t + L) / (2 * L)) * G ** t + K0),
    "sin": (dict(k0=K0, k1=K1, l=L),
            lambda t: (K1 - K0) * abs(math.sin(PI * t / (2 * L))) + K0),
    "sin2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * abs(
        math.sin(PI * t / (2 * L))) / 2 ** math.floor(t / (2 * L)) + K0),
    "sinexp": (dict(k0=K0, k1=K1, gamma=G, l=L), lambda t: (K1 - K0) * abs(
        math.sin(PI * t / (2 * L))) * G ** t + K0),
    "dsin": (dict(k0=K0, k1=K1, l=L),
             lambda t: (K1 - K0) * abs(math.sin(PI * (t + L) / (2 * L))) + K0),
    "dsin2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * abs(
        math.sin(PI * (t + L) / (2 * L))) / 2 ** math.floor((t + L) / (2 * L))
              + K0),
    "dsinexp": (dict(k0=K0, k1=K1, gamma=G, l=L), lambda t: (K1 - K0) * abs(
        math.sin(PI * (t + L) / (2 * L))) * G ** t + K0),
    "cos": (dict(k0=K0, k1=K1, l=L),
            lambda t: (K1 - K0) * 0.5 * (1 + math.cos(PI * t / L)) + K0),
    "cos2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * 0.5 * (
        1 + math.cos(PI * t / L)) / 2 ** math.floor((t + L) / (2 * L)) + K0),
    "cosexp": (dict(k0=K0, k1=K1, gamma=G, l=L), lambda t: (K1 - K0) * 0.5 * (
        1 + math.cos(PI * t / L)) * G ** t + K0),
    "upcos": (dict(k0=K0, k1=K1, l=L),
              lambda t: (K1 - K0) * 0.5 * (1 + math.cos(PI * (t / L + 1))) + K0),
    "upcos2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * 0.5 * (
        1 + math.cos(PI * (t / L + 1))) / 2 ** math.floor(t / (2 * L)) + K0),
    "upcosexp": (dict(k0=K0, k1=K1, gamma=G, l=L), lambda t: (K1 - K0) * 0.5 * (
        1 + math.cos(PI * (t / L + 1))) * G ** t + K0),
    "rsw": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * _u(t, L) + K0),
    "rsw2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * _u(t, L)
             / 2 ** math.floor(t / L) + K0),
    "rswexp": (dict(k0=K0, k1=K1, gamma=G, l=L),
               lambda t: (K1 - K0) * _u(t, L) * G ** t + K0),
    "sinrsw": (dict(k0=K0, k1=K1, l=L),
               lambda t: (K1 - K0) * math.sin(PI / 2 * _u(t, L)) + K0),
    "sinrsw2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * math.sin(
        PI / 2 * _u(t, L)) / 2 ** math.floor(t / L) + K0),
    "sinrswexp": (dict(k0=K0, k1=K1, gamma=G, l=L), lambda t: (K1 - K0) * math.sin(
        PI / 2 * _u(t, L)) * G ** t + K0),
    "cosrsw": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * 0.5 * (
        1 - math.cos(PI * _u(t, L))) + K0),
    "cosrsw2": (dict(k0=K0, k1=K1, l=L), lambda t: (K1 - K0) * 0.5 * (
        1 - math.cos(PI * _u(t, L))) / 2 ** math.floor(t / L) + K0),
    "cosrswexp": (dict(k0=K0, k1=K1, gamma=G, l=L), lambda t: (K1 - K0) * 0.5 * (
        1 - math.cos(PI * _u(t, L))) * G ** t + K0),
    "linear": (dict(k0=0.0, k1=K1, l=L), lambda t: K1 * min(t, L) / L),
    "onecycle": (dict(k0=K0, k1=K1, k2=0.001, l=20.0, p=0.25), None),
    "sgdr": (dict(k0=K0, k1=K1, l=5.0, p=2.0), None),
}
STEPS = [0, 1, 3, 5, 7, 10, 12, 15, 19, 20, 21, 25, 30, 37, 40, 50, 61]


def test_all_lrbench_functions_present():
  assert len(S.LRBENCH_POLICIES) == 34
  assert set(REF) == set(S.POLICIES)


@pytest.mark.parametrize("name", [n for n in REF if REF[n][1] is not None])
def test_closed_form_matches_formula(name):
  params, ref = REF[name]
  for make in (S.policy, S.closed_form):
    sched = make(name, **params)
    got = np.array([float(sched(t)) for t in STEPS])
    want = np.array([ref(float(t)) for t in STEPS])
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7,
                               err_msg=f"{name} via {make.__name__}")


def test_phases_and_half_period():
  """l is the half period: cyclic policies reach the other extreme at t = l."""
  lo, hi = K0, K1
  at = lambda n, t: float(S.policy(n, k0=lo, k1=hi, l=L)(t))
  for rising in ("tri", "sin", "upcos"):
    assert at(rising, 0) == pytest.approx(lo)
    assert at(rising, L) == pytest.approx(hi)
    assert at(rising, 2 * L) == pytest.approx(lo, abs=1e-7)
  for falling in ("dtri", "dsin", "cos"):
    assert at(falling, 0) == pytest.approx(hi)
    assert at(falling, L) == pytest.approx(lo, abs=1e-7)
    assert at(falling, 2 * L) == pytest.approx(hi)
  # The "2" variants halve the amplitude once per full period, at its low.
  assert at("tri2", 3 * L) == pytest.approx(lo + (hi - lo) / 2)
  assert at("cos2", 2 * L) == pytest.approx(lo + (hi - lo) / 2)
  assert at("dsin2", 2 * L) == pytest.approx(lo + (hi - lo) / 2)
  assert at("upcos2", 3 * L) == pytest.approx(lo + (hi - lo) / 2)
  # Restarts: k0 at multiples of l (LRBench), near k1 right after.
  assert at("cosrsw", L) == pytest.approx(lo)
  assert at("cosrsw", L + 1) > 0.95 * hi
  assert at("rsw", L + 0.5 * L) == pytest.approx((lo + hi) / 2)


def test_onecycle_equals_optax_and_shape():
  p = REF["onecycle"][0]
  ours = S.closed_form("onecycle", **p)
  ref = optax.cosine_onecycle_schedule(20, K1, pct_start=0.25,
                                       div_factor=K1 / K0,
                                       final_div_factor=K0 / 0.001)
  for t in STEPS:
    assert float(ours(t)) == pytest.approx(float(ref(t)), rel=1e-5, abs=1e-8)
  assert float(ours(0)) == pytest.approx(K0)
  assert float(ours(5)) == pytest.approx(K1)
  assert float(ours(20)) == pytest.approx(0.001)


def test_sgdr_cycles():
  s = S.closed_form("sgdr", **REF["sgdr"][0])  # periods 5, 10, 20, ...
  for start, period in ((0, 5), (5, 10), (15, 20), (35, 40)):
    assert float(s(start)) == pytest.approx(K1, rel=1e-5)
    mid = K0 + (K1 - K0) * 0.5 * (1 + math.cos(PI * 0.5))
    assert float(s(start + period / 2)) == pytest.approx(mid, rel=1e-4)
  s1 = S.closed_form("sgdr", k0=0.0, k1=1.0, l=8.0)
  ref = optax.join_schedules([optax.cosine_decay_schedule(1.0, 8)] * 3,
                             [8, 16])
  for t in range(24):
    assert float(s1(t)) == pytest.approx(float(ref(t)), abs=1e-6)


@pytest.mark.parametrize("name", ["fix", "step", "nstep", "exp", "poly",
                                  "linear", "onecycle"])
def test_optax_reuse_is_the_same_function(name):
  params = REF[name][0]
  a, b = S.policy(name, **params), S.closed_form(name, **params)
  for t in STEPS:
    assert float(a(t)) == pytest.approx(float(b(t)), rel=1e-5, abs=1e-8)


def test_warmup_wrapper():
  base = S.policy("cos", k0=0.0, k1=1.0, l=10)
  w = S.warmup(base, 4)
  assert [float(w(t)) for t in range(5)] == pytest.approx(
      [0, 0.25, 0.5, 0.75, 1.0])
  assert float(w(9)) == pytest.approx(float(base(5)))
  spec = S.schedule_from_spec("cos(k0=0, k1=1, l=10, warmup=4)")
  traced = jax.jit(lambda t: S.closed_form("cos", k0=0.0, k1=1.0, l=10.0,
                                           warmup=jnp.float32(4))(t))
  for t in (0, 2, 4, 9, 13):
    assert float(spec(t)) == pytest.approx(float(w(t)))
    assert float(traced(t)) == pytest.approx(float(w(t)), rel=1e-5)


def test_composite_joins_stages_at_local_time():
  c = S.schedule_from_spec(
      "tri2(k0=0.01, k1=0.1, l=5)[30] -> exp(k0=0.05, gamma=0.9)")
  tri2 = S.policy("tri2", k0=0.01, k1=0.1, l=5)
  for t in (0, 5, 12, 29):
    assert float(c(t)) == pytest.approx(float(tri2(t)))
  for t in (30, 31, 40):
    assert float(c(t)) == pytest.approx(0.05 * 0.9 ** (t - 30), rel=1e-5)


def test_packed_population_of_mixed_policies_jit_scan_vmap():
  specs = ["cos(k0=0.001, k1=0.1, l=20)", "nstep(k0=0.1, gamma=0.1, l=[5, 12])",
           "tri2(k0=0.01, k1=0.1, l=4)[10] -> exp(k0=0.05, gamma=0.9)",
           "onecycle(k0=0.01, k1=0.1, k2=0.001, l=20, p=0.25)",
           "sgdr(k0=0.01, k1=0.1, l=5, p=2, warmup=3)",
           "fix(k0=0.02)[7] -> poly(k0=0.1, p=2, l=10)[10] -> rsw2(k0=0.01, k1=0.1, l=4)"]
  packed = S.stack_packed([S.pack_spec(s, 3) for s in specs])

  @jax.jit
  def curves(pk):
    def one(p):
      sched = S.packed_schedule(p)
      return jax.lax.scan(lambda c, t: (c, sched(t)), 0, jnp.arange(40))[1]
    return jax.vmap(one)(pk)

  got = np.asarray(curves(packed))
  for i, s in enumerate(specs):
    ref = S.schedule_from_spec(s)
    want = np.array([float(ref(t)) for t in range(40)])
    np.testing.assert_allclose(got[i], want, rtol=2e-5, atol=1e-7,
                               err_msg=s)


def test_vmap_over_parameters_and_gradient():
  k1s = jnp.array([0.1, 0.2, 0.4])
  out = jax.vmap(lambda k1: S.closed_form("tri2", k0=0.0, k1=k1, l=10.0)(5))(
      k1s)
  np.testing.assert_allclose(out, k1s / 2, rtol=1e-6)
  ls = jnp.array([5.0, 10.0])
  out = jax.vmap(lambda l: S.closed_form("cos", k0=0.0, k1=1.0, l=l)(5))(ls)
  np.testing.assert_allclose(out, [0.0, 0.5], atol=1e-6)
  # d/dk0 of exp at t=3 is gamma^3; check against finite differences too.
  g = jax.grad(lambda k0: S.closed_form("exp", k0=k0, gamma=0.9)(3))(0.1)
  assert float(g) == pytest.approx(0.9 ** 3, rel=1e-5)
  f = lambda k1: S.closed_form("sin", k0=0.01, k1=k1, l=7.0)(3)
  fd = (f(0.1 + 1e-3) - f(0.1 - 1e-3)) / 2e-3
  assert float(jax.grad(f)(0.1)) == pytest.approx(float(fd), rel=1e-3)


@pytest.mark.parametrize("spec,field", [
    ("tri2(k0=0.01, k1=0.1)", "'l'"),
    ("tri2(k0=0.01, k1=0.1, l=5, q=3)", "'q'"),
    ("tri2(k0=0.01, k1='x', l=5)", "'k1'"),
    ("tri2(k0=0.01, k1=0.1, l=-5)", "'l'"),
    ("exp(k0=-1, gamma=0.9)", "'k0'"),
    ("nstep(k0=0.1, gamma=0.1, l=[1, 2, 3, 4, 5])", "'l'"),
    ("onecycle(k0=0.01, k1=0.1, k2=0.001, l=10, p=1.5)", "'p'"),
    ("triangel2(k0=0.01, k1=0.1, l=5)", "triangle2"),
    ("tri2(0.01, k1=0.1, l=5)", "positional"),
    ("tri2(k0=0.01, k1=0.1, l=5) -> exp(k0=0.1, gamma=0.9)", "length"),
    ("fix(k0=0.1)[0] -> fix(k0=0.01)", "length"),
])
def test_malformed_specs_name_the_field(spec, field):
  with pytest.raises(S.PolicyError, match=field):
    S.parse_spec(spec)


def test_spec_round_trips():
  for s in ["triangle2(k0=0.01, k1=0.1, l=2000)",
            "nstep(k0=0.1, gamma=0.1, l=[150, 180])",
            "tri2(k0=0.01, k1=0.1, l=50)[300] -> exp(k0=0.05, gamma=0.999)"]:
    spec = S.parse_spec(s)
    assert S.parse_spec(S.format_spec(spec)) == spec
    assert S.parse_spec(S.spec_to_dict(spec)) == spec
  assert S.format_spec("triangle2(k0=0.01, k1=0.1, l=2000)") == (
      "tri2(k0=0.01, k1=0.1, l=2000)")
  with pytest.raises(S.PolicyError, match="'steps'"):
    S.parse_spec({"stages": [{"policy": "fix", "k0": 0.1},
                             {"policy": "fix", "k0": 0.01}]})


def test_sgd_records_applied_rate():
  tx = S.sgd(S.policy("step", k0=0.1, gamma=0.5, l=2), momentum=0.9)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  lrs = []
  for _ in range(5):
    _, state = tx.update({"w": jnp.ones(3)}, state, params)
    lrs.append(float(applied_learning_rate(state)))
  assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_plateau_sgd_contract_and_decay():
  check_controller_contract(lambda: S.plateau_sgd(0.1, patience=1),
                            steps=4)
  tx = S.plateau_sgd(0.1, momentum=0.0, factor=0.5, patience=2)
  params = {"w": jnp.ones(2)}
  state = tx.init(params)
  rates = []
  for _ in range(6):  # a constant loss never improves: rate halves
    u, state = tx.update({"w": jnp.ones(2)}, state, params, value=1.0)
    rates.append(float(applied_learning_rate(state)))
  assert rates[0] == pytest.approx(0.1)
  assert rates[-1] < 0.1
  np.testing.assert_allclose(u["w"], -rates[-1] * np.ones(2), rtol=1e-6)
