"""The family protocol: a sqrt(2) grid that widens past its edge, per-instance
and per-family rates that are the argmax of what was evaluated, no run done
twice, paired differences against a hand computation."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from lrmeta import protocol as C
from lrmeta.experiments.optim import simple_schedule
from lrmeta.protocol import comparison as PC
from lrmeta.protocol import executors as E
from lrmeta.protocol import base_optimizer, family_baselines
from lrmeta.experiments.results import family_table_rows, write_family_table
from lrmeta.tasks.family import Instance
from lrmeta.train import History

SHAPES = tuple(Instance(pool=7, hidden=(16,), batch_size=32, num_steps=t,
                        seed=3) for t in (50, 30))
GRID = C.sqrt2_grid(1e-4)  # far below the best rate: tuning must widen up
WIDEN = 2
FIXED_LR = 0.05


def test_grid_is_checked():
  assert C.sqrt2_grid(0.01, 3) == pytest.approx((0.01, 0.01 * 2**0.5, 0.02))
  ok = C.FamilyProtocol(C.sqrt2_grid(0.01), (0,), (1, 2))
  assert ok.rate(-1) == pytest.approx(0.01 / 2**0.5)
  assert ok.rate(8) == pytest.approx(0.01 * 2**4)
  with pytest.raises(ValueError, match="sqrt"):
    C.FamilyProtocol(tuple(0.01 * 2.0**k for k in range(8)), (0,), (1, 2))
  with pytest.raises(ValueError, match="at least 8"):
    C.FamilyProtocol(C.sqrt2_grid(0.01, 7), (0,), (1, 2))
  with pytest.raises(ValueError, match="test_seeds"):
    C.FamilyProtocol(C.sqrt2_grid(0.01), (0,), (1,))


def test_warmup_cosine_matches_optax_with_a_traced_rate():
  ref = optax.warmup_cosine_decay_schedule(0.0, 0.3, 2, 50)  # 5 % of 50
  f = jax.jit(jax.vmap(
      lambda lr, t: simple_schedule("warmup_cosine", lr, 50)(t), (0, None)))
  for t in (0, 1, 2, 3, 25, 49, 50):
    np.testing.assert_allclose(f(jnp.array([0.3, 0.6]), t),
                               [ref(t), 2 * ref(t)], rtol=1e-6, atol=1e-9)
  assert float(simple_schedule("warmup_cosine", 1.0, 10)(1)) == 1.0
  with pytest.raises(ValueError, match="2 steps"):
    simple_schedule("warmup_cosine", 0.1, 1)


@pytest.fixture(scope="module")
def family_run():
  """One tuned and one fixed method on two shapes; every population call
  recorded as (task, rates, splits)."""
  calls = []
  real = E.train_population

  def spy(task, make_optimizer, hparams, keys, num_steps, **kw):
    lrs = None if hparams is None else np.asarray(hparams["lr"]).tolist()
    calls.append((task.name, lrs, tuple(kw["eval_splits"])))
    return real(task, make_optimizer, hparams, keys, num_steps, **kw)

  methods = {"cosine": family_baselines()["cosine"],
             "fixed": lambda shape: C.Method(
                 lambda lr: base_optimizer("sgd", lr), lr=FIXED_LR,
                 tune=False)}
  protocol = C.FamilyProtocol(GRID, (0, 1), (5, 6, 7), max_widen=WIDEN)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(E, "train_population", spy)
    results = C.compare_family(SHAPES, methods, protocol, quiet=True)
  return results, calls


def test_tuning_widens_past_the_edge_and_picks_the_argmax(family_run):
  results, calls = family_run
  r = results["cosine"]
  shapes = [s.shape for s in SHAPES]
  assert list(r.per_instance) == shapes and list(r.grid_val_acc) == shapes
  for s in shapes:
    val = r.grid_val_acc[s]
    rates = sorted(val)
    # Accuracy still rises at the grid's top, so every widening step went
    # up, one sqrt(2) step at a time.
    assert rates[:len(GRID)] == list(GRID) and len(rates) == len(GRID) + WIDEN
    np.testing.assert_allclose(np.diff(np.log(rates)), np.log(2) / 2,
                               rtol=1e-9)
    assert r.per_instance[s].lr == max(val, key=val.get) > GRID[-1]
    assert r.per_instance[s].grid_val_acc == [val[k] for k in rates]
    assert r.per_instance[s].seeds == (5, 6, 7)
    assert r.per_instance[s].hist.final("test_acc").shape == (3,)
  common = set.intersection(*(set(r.grid_val_acc[s]) for s in shapes))
  mean = {k: np.mean([r.grid_val_acc[s][k] for s in shapes])
          for k in sorted(common)}
  assert r.family_lr == max(mean, key=mean.get)
  # Tuning never trains a (shape, rate) twice; one test population per shape
  # and method (family and instance rate together).
  tuned = [(t, lr) for t, lrs, sp in calls if sp == ("val",)
           for lr in dict.fromkeys(lrs)]
  assert len(tuned) == len(set(tuned)) == sum(len(v) for v in
                                              r.grid_val_acc.values())
  tests = [c for c in calls if c[2] == ("val", "test")]
  assert len(tests) == 2 * len(shapes)


def test_untuned_method_runs_once_at_its_rate(family_run):
  r = family_run[0]["fixed"]
  assert r.family_lr is None and r.per_family is r.per_instance
  for s in SHAPES:
    assert r.per_instance[s.shape].lr == FIXED_LR
    assert r.grid_val_acc[s.shape] == {}
    # Trained, not at chance level.
    assert r.per_instance[s.shape].hist.final("test_acc").mean() > 0.3


def test_family_differences_pool_the_pairs(family_run):
  results = family_run[0]
  d = C.family_differences(results, ("fixed", "instance"),
                           ("cosine", "family"))
  fixed, cos = results["fixed"].per_instance, results["cosine"].per_family
  for metric, scale in (("acc", 100.0), ("loss", 1.0)):
    key = f"test_{metric}"
    diff = np.concatenate([scale * (fixed[s].hist.final(key)
                                    - cos[s].hist.final(key))
                           for s in fixed]).astype(np.float64)
    assert np.isfinite(diff).all() and diff.size == 6
    half = (scipy.stats.t.ppf(0.975, 5) * diff.std(ddof=1) / np.sqrt(6))
    got = d["pooled"][metric]
    assert got["n"] == 6
    assert got["mean"] == pytest.approx(diff.mean(), rel=1e-5)
    assert got["ci_low"] == pytest.approx(diff.mean() - half, rel=1e-5)
    assert got["ci_high"] == pytest.approx(diff.mean() + half, rel=1e-5)
  assert set(d["per_instance"]) == {s.shape.name for s in SHAPES}
  one = d["per_instance"][SHAPES[1].shape.name]["acc"]
  s = SHAPES[1].shape
  assert one["mean"] == pytest.approx(100 * np.mean(
      fixed[s].hist.final("test_acc") - cos[s].hist.final("test_acc")),
                                      rel=1e-5)


@pytest.mark.parametrize("max_widen", [4, 2])
def test_widening_per_instance_and_per_family(monkeypatch, max_widen):
  # Validation accuracy peaks at grid index 10 on one shape and 6 on the
  # other (a parabola in log-rate), so their mean peaks at 8: above the
  # rates both shapes share after per-instance tuning.
  peak = {50: 10, 30: 6}
  grid = C.sqrt2_grid(0.01)
  calls = []

  def fake(task, method, steps, lrs, seeds, splits, tuning=False):
    ks = np.rint(np.log(np.asarray(lrs) / grid[0]) / np.log(2**0.5))
    calls.append((steps, tuple(ks.astype(int).tolist()), splits))
    acc = 0.9 - 0.01 * (ks - peak[steps])**2
    k = len(lrs)
    evals = {f"{sp}_{m}": acc[:, None]
             for sp in splits for m in ("acc", "loss")}
    return History({"train_loss": np.zeros((k, 1)),
                    "finite": np.ones((k, 1), bool)}, np.array([steps]),
                   evals, 0.0)

  monkeypatch.setattr(PC, "make_executor", lambda kind, **kw: fake)
  p = C.FamilyProtocol(grid, (0, 1), (5, 6), max_widen=max_widen)
  r = C.compare_family(SHAPES, {"m": family_baselines()["cosine"]}, p,
                       task_fn=lambda shape: shape.name, quiet=True)["m"]
  a, b = (s.shape for s in SHAPES)
  tuned = [(t, k) for t, ks, sp in calls if sp == ("val",)
           for k in dict.fromkeys(ks)]
  assert len(tuned) == len(set(tuned))  # no (shape, rate) twice
  evaluated = {t: sorted(k for u, k in tuned if u == t) for t in peak}
  # b's own best (6) is inside its grid; the family rate (8) needs 8 and 9
  # run on b to be inside the rates both shapes share. a widens up to its
  # best (10) plus one, or stops on its edge after two steps.
  best_a = 10 if max_widen == 4 else 9
  assert evaluated == {50: list(range(best_a + (max_widen == 4) + 1)),
                       30: list(range(10))}
  assert r.per_instance[a].lr == p.rate(best_a)
  assert r.per_instance[b].lr == p.rate(6)
  assert r.family_lr == p.rate(8)
  for s in (a, b):
    val = r.grid_val_acc[s]
    assert r.per_instance[s].lr == max(val, key=val.get)
  # One test population per shape holds both rates, per-instance first.
  tests = [(t, ks) for t, ks, sp in calls if sp == ("val", "test")]
  assert tests == [(50, (best_a, best_a, 8, 8)), (30, (6, 6, 8, 8))]
  np.testing.assert_allclose(r.per_family[b].hist.final("val_acc"),
                             [0.9 - 0.01 * (8 - 6)**2] * 2)
  np.testing.assert_allclose(r.per_instance[b].hist.final("val_acc"),
                             [0.9] * 2)


def _hist(acc, loss, diverged=()):
  """A hand-made history of final test metrics, one run per entry."""
  k = len(acc)
  finite = np.ones((k, 4), bool)
  finite[list(diverged), 2:] = False
  return History({"train_loss": np.ones((k, 4)), "finite": finite},
                 np.array([4]),
                 {"test_acc": np.asarray(acc)[:, None],
                  "test_loss": np.asarray(loss)[:, None]}, 0.0)


def _result(hist, seeds):
  r = C.Result(0.1, [], hist, seeds)
  return C.FamilyResult({SHAPES[0].shape: r}, {SHAPES[0].shape: r}, 0.1,
                        {SHAPES[0].shape: {}})


def test_divergence_counts_as_zero_accuracy_and_leaves_the_loss_out(
    tmp_path):
  # Run 1 of "a" diverged (chance accuracy of NaN logits, NaN loss); "b"
  # lists its seeds in another order, so pairing must go by seed.
  a = _result(_hist([0.8, 0.1, 0.7, 0.9], [0.5, np.nan, 0.6, 0.4], [1]),
              (0, 1, 2, 3))
  b = _result(_hist([0.6, 0.5, 0.4, 0.7], [0.9, 1.0, 0.8, 0.7]),
              (3, 2, 1, 0))
  results = {"a": a, "b": b}
  d = C.family_differences(results, ("a", "instance"), ("b", "family"))
  acc, loss = d["pooled"]["acc"], d["pooled"]["loss"]
  assert acc["n"] == 4 and loss["n"] == 3
  assert acc["mean"] == pytest.approx(np.mean([10.0, -40.0, 20.0, 30.0]))
  assert loss["mean"] == pytest.approx(np.mean([-0.2, -0.4, -0.5]))
  rows = family_table_rows(results, ("b", "family"), [("a", "instance")])
  assert [r[1] for r in rows] == [SHAPES[0].shape.name, "pooled"]
  assert rows[-1][-1] == "tie"  # the diverged run widens the interval
  clear = {"a": _result(_hist([0.8, 0.82, 0.79, 0.81], [0.5] * 4),
                        (0, 1, 2, 3)), "b": b}
  text = write_family_table(tmp_path / "t.md", clear, ("b", "family"),
                            [("a", "instance")])
  assert text == (tmp_path / "t.md").read_text()
  assert family_table_rows(clear, ("b", "family"),
                           [("a", "instance")])[-1][-1] == "better"
  assert family_table_rows(clear, ("a", "instance"),
                           [("b", "family")])[-1][-1] == "worse"


def test_paired_versus_baselines_reads_the_saved_per_seed_accuracies(
    family_run, tmp_path):
  """rl-train's paired intervals of a method minus each baseline are the
  paired Student-t intervals of the raw per-(shape, seed) accuracies it
  saves, for both tunings."""
  from lrmeta.experiments.rl_report import paired_versus_baselines
  results = family_run[0]
  lines = []
  paired = paired_versus_baselines(results, "fixed", tmp_path, lines.append)
  raw = json.loads((tmp_path / "heldout_results.json").read_text())
  assert raw["fixed"]["family_lr"] is None
  assert raw["cosine"]["family_lr"] == results["cosine"].family_lr
  for how in ("family", "instance"):
    assert set(paired[how]) == {"cosine"}
    mine, base = raw["fixed"][how], raw["cosine"][how]
    assert set(mine) == {s.shape.name for s in SHAPES}
    diff = np.concatenate([np.subtract(mine[s]["test_acc"],
                                       base[s]["test_acc"]) for s in mine])
    assert all(mine[s]["seeds"] == [5, 6, 7] for s in mine)
    half = scipy.stats.t.ppf(0.975, 5) * diff.std(ddof=1) / np.sqrt(6)
    got = paired[how]["cosine"]
    assert got["n"] == 6 and got["verdict"] in ("better", "worse", "tie")
    assert got["mean"] == pytest.approx(diff.mean(), rel=1e-5)
    assert got["ci_high"] - got["ci_low"] == pytest.approx(2 * half, rel=1e-5)
  assert len(lines) == 2 and "fixed minus family-tuned cosine" in lines[0]
