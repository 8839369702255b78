"""Every policy against its formula, its phase, optax, jit/scan/vmap, specs."""

from __future__ import annotations

import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrmeta.schedules as S
from lrmeta.schedules import registry, shapes
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
    "wsd": (dict(k0=K1, l=L, p=0.25),
            lambda t: K1 * min(1.0, max(0.0, (L - t) / (0.25 * L)))),
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


# Every path that evaluates a policy, bit for bit on XLA:CPU: sha256 (first 16
# hex digits) of the float32 values at BIT_STEPS of, in order, the eager
# closed form, policy(), policy() with a 3-step warm-up, the jitted closed
# form, the jitted closed form with a traced 3-step warm-up, and the packed
# form in a jitted vmap(scan) population without and with a 3-step warm-up.
# Parameters are REF's. A change of any bit of any of them changes the digest.
BIT_STEPS = (0, 1, 3, 7, 10, 13, 20, 26, 37, 61)
FROZEN_BITS = {
    "fix": "f47fce277a7d47d9", "step": "824a19f62df3804d",
    "nstep": "04cf66edf082006c", "exp": "0d4f386aeb5b05ed",
    "inv": "1042d9a70e72bb01", "poly": "e1a01795f460345d",
    "sig": "1a247ffa51b239ab", "tri": "227bd83ad697fe44",
    "tri2": "5a88ea072b29a158", "triexp": "2dc98e4f4429dfca",
    "dtri": "10936b0a1097ab99", "dtri2": "9a37586c0c4e5fd6",
    "dtriexp": "d7ca9421d2dea1c4", "sin": "ce00b8740e3ad2bf",
    "sin2": "bf8ee663e8bef727", "sinexp": "8ccd236649dae825",
    "dsin": "4d4c1da3c5e72596", "dsin2": "663030b5bd6fa76c",
    "dsinexp": "148687096f141136", "cos": "77df8f0fd5fe437a",
    "cos2": "4943f6016b704f1b", "cosexp": "cfcb2010dc14427b",
    "upcos": "c6c14428c7e6407a", "upcos2": "fa1501e22528c2df",
    "upcosexp": "ad9267963f24b748", "rsw": "c0a88329a77dd144",
    "rsw2": "6418219c8ad3b791", "rswexp": "a12ffe9b896c8b41",
    "sinrsw": "9240f09060545f03", "sinrsw2": "96388374b6d947d9",
    "sinrswexp": "1ea42a55d33de469", "cosrsw": "99dc39a37cc815dd",
    "cosrsw2": "2e8247324a25c2b8", "cosrswexp": "fc3915f552ff2577",
    "linear": "7b333c9ac75d2c0c", "onecycle": "bf764fe246364f0c",
    "sgdr": "6c36b29ea7fbf30f", "wsd": "04369f568152dbe7",
}


def _packed_bit_curves(warm):
  names = list(S.POLICIES)
  packed = S.stack_packed([
      S.pack_spec({"policy": n, **REF[n][0], "warmup": warm}, 1)
      for n in names])
  ts = jnp.asarray(BIT_STEPS, jnp.float32)

  def one(p):
    sched = S.packed_schedule(p)
    return jax.lax.scan(lambda c, t: (c, sched(t)), 0, ts)[1]
  return dict(zip(names, np.asarray(jax.jit(jax.vmap(one))(packed))))


@pytest.mark.skipif(jax.default_backend() != "cpu",
                    reason="digests are of XLA:CPU's float32 results")
def test_every_policy_keeps_its_bits_on_every_path():
  packed, packed_warm = _packed_bit_curves(0), _packed_bit_curves(3)
  ts = jnp.asarray(BIT_STEPS, jnp.float32)
  changed = []
  for name in S.POLICIES:
    params = REF[name][0]
    parts = [
        [S.closed_form(name, **params)(t) for t in BIT_STEPS],
        [S.policy(name, **params)(t) for t in BIT_STEPS],
        [S.policy(name, **params, warmup=3)(t) for t in BIT_STEPS],
        jax.jit(lambda t: S.closed_form(name, **params)(t))(ts),
        jax.jit(lambda t, w: S.closed_form(name, **params, warmup=w)(t))(
            ts, jnp.float32(3)),
        packed[name], packed_warm[name]]
    bits = b"".join(np.asarray(p, np.float32).tobytes() for p in parts)
    if hashlib.sha256(bits).hexdigest()[:16] != FROZEN_BITS[name]:
      changed.append(name)
  assert set(FROZEN_BITS) == set(S.POLICIES)
  assert not changed, f"values changed for {changed}"


def test_periodic_policies_are_shapes_times_modulations():
  periodic = [n for n, d in S.POLICIES.items()
              if d.family in ("cyclic", "restart")]
  assert periodic == [s.name + m for s in shapes.SHAPES
                      for m in shapes.MODULATIONS]
  assert len(periodic) == 27
  # The "2" modulation halves the amplitude once per cycle; "exp" scales it
  # by gamma^t. Checked against the plain shape at steps inside cycle 1.
  for s in shapes.SHAPES:
    plain = S.closed_form(s.name, k0=0.0, k1=1.0, l=L)
    halved = S.closed_form(s.name + "2", k0=0.0, k1=1.0, l=L)
    scaled = S.closed_form(s.name + "exp", k0=0.0, k1=1.0, gamma=G, l=L)
    for t in (3.0, 7.0, 11.0, 14.0):
      c = math.floor(float(s.cycle(jnp.float32(t), jnp.float32(L))))
      assert float(halved(t)) == pytest.approx(
          float(plain(t)) / 2 ** c, rel=1e-5, abs=1e-7), (s.name, t)
      assert float(scaled(t)) == pytest.approx(
          float(plain(t)) * G ** t, rel=1e-5, abs=1e-7), (s.name, t)


def test_packed_slots_hold_every_field():
  for d in S.POLICIES.values():
    assert set(d.params) | set(registry.COMMON_FIELDS) <= set(S.SLOTS), d.name


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
