"""Whole-run ES on the task family: instances per call, determinism, the
antithetic estimate, perturbation subsets, the outer loop on the host, the
hypergradient learned kind and the family meta-training run."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrmeta import learned
from lrmeta.experiments import diagnostics, family_loop
from lrmeta.experiments.config import load_config
from lrmeta.learned import hypergradient as hd_kind
from lrmeta.meta import MetaCheckpointer, MetaTrainer, meta_train
from lrmeta.meta import family_es as fes
from lrmeta.protocol import DEFAULT_BASELINES
from lrmeta.tasks import family as fam

TINY = fam.Instance("fashion_mnist", 7, (16,), batch_size=32, num_steps=20)
SHAPES = (TINY, dataclasses.replace(TINY, num_steps=30),
          dataclasses.replace(TINY, hidden=(8,)))


def constant_sgd(num_steps):
  del num_steps
  return lambda theta: optax.sgd(jnp.exp(theta["log_lr"]), momentum=0.9)


def _estimator(**kw):
  return fes.FamilyES(constant_sgd, SHAPES, **{
      "num_pairs": 4, "sigma": 0.2, "shapes_per_step": 2, **kw})


def test_instances_per_call():
  est = _estimator()
  a = est.instances(jax.random.key(0))
  assert a == est.instances(jax.random.key(0))
  assert a != est.instances(jax.random.key(1))
  assert len(a) == 4 and len({i.seed for i in a}) == 4  # own instance each
  assert all(0 <= i.seed < fes.VALIDATION_SEED_BASE for i in a)
  groups = fam.group_by_shape(a)
  assert len(groups) == 2 and all(len(v) == 2 for v in groups.values())
  assert set(groups) <= set(SHAPES)
  val = est.validation_instances()
  assert len(val) == len(SHAPES) * 2 * est.pairs_per_shape
  assert all(fes.VALIDATION_SEED_BASE <= i.seed < fam.HELD_OUT_SEED_BASE
             for i in val)
  with pytest.raises(ValueError, match="shapes_per_step"):
    _estimator(shapes_per_step=3)


def test_antithetic_gradient_by_hand():
  eps = {"a": np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 3.0]])}
  plus = np.array([1.2, 0.9, np.nan])
  minus = np.array([1.0, 1.1, 0.7])
  grad, used = fes.antithetic_gradient(eps, plus, minus, sigma=0.1)
  assert used == 2  # the NaN pair is left out
  want = (0.2 * np.array([1.0, 2.0]) - 0.2 * np.array([0.5, -1.0])) / (
      2 * 0.1 * 2)
  np.testing.assert_allclose(grad["a"], want)
  assert fes.tree_cosine({"x": np.array([1.0, 0.0])},
                         {"x": np.array([2.0, 2.0])}) == pytest.approx(
                             1 / np.sqrt(2))


def test_es_with_fixed_keys_is_deterministic_and_descends():
  est = _estimator()
  theta = {"log_lr": jnp.float32(np.log(0.003))}
  g1, m1 = est.estimate_with_metrics(theta, jax.random.key(5))
  g2, m2 = est.estimate_with_metrics(theta, jax.random.key(5))
  assert float(g1["log_lr"]) == float(g2["log_lr"])
  assert m1 == m2 and m1["num_ok"] == 4
  g3, _ = est.estimate_with_metrics(theta, jax.random.key(6))
  assert float(g3["log_lr"]) != float(g1["log_lr"])
  # A rate 17x below the reference is too small for 20-30 steps: raising it
  # lowers the loss, so the fitness gradient in log-rate is negative.
  assert float(g1["log_lr"]) < 0 and float(g3["log_lr"]) < 0
  # The fitness is the loss over the reference loss of the same runs.
  inst = est.instances(jax.random.key(9))
  fit = est.fitness(theta, inst)
  losses = fes.runs.final_val_losses(inst, constant_sgd(0),
                                     [theta] * len(inst))
  np.testing.assert_allclose(fit, losses / fes.runs.reference_losses(inst),
                             rtol=1e-5)


def test_es_cosine_curve_pools_calls():
  """Each estimate of the large signal check is the pair-weighted mean of
  independent calls: after one call the curve is the one-call check, after
  two it is the cosine of the two calls' sums, and on a rate 17x too small
  every estimate points the same way in log-rate."""
  est = _estimator()
  theta = {"log_lr": jnp.float32(np.log(0.003)),
           "unused": jnp.zeros((3,), jnp.float32)}
  key = jax.random.key(11)
  curve = fes.es_cosine_curve(est, theta, key, 3)
  assert [n for n, _ in curve] == [4, 8, 12]
  assert curve[0][1] == pytest.approx(fes.es_cosine(est, theta, key))
  ka, kb = jax.random.split(key)
  ga = [est.estimate_with_metrics(theta, k)[0]
        for k in (ka, jax.random.fold_in(ka, 1))]
  gb = [est.estimate_with_metrics(theta, k)[0]
        for k in (kb, jax.random.fold_in(kb, 1))]
  want = fes.tree_cosine(jax.tree.map(np.add, *ga), jax.tree.map(np.add, *gb))
  assert curve[1][1] == pytest.approx(want)
  one_d = fes.es_cosine_curve(est, {"log_lr": theta["log_lr"]}, key, 2)
  assert [c for _, c in one_d] == pytest.approx([1.0, 1.0])


def test_fitness_cap_scores_blown_up_runs_at_the_cap():
  """A rate of 50 blows the runs up: without a cap those pairs are left out;
  with one every run scores at most the cap and the diverged ones exactly
  the cap, so a pair of one sane and one blown-up run still counts."""
  inst = _estimator().instances(jax.random.key(3))
  sane = {"log_lr": jnp.float32(np.log(0.05))}
  wild = {"log_lr": jnp.float32(np.log(50.0))}
  raw = _estimator().fitness(wild, inst)
  assert not np.isfinite(raw).all() or raw.min() > 3.0
  capped = _estimator(fitness_cap=3.0)
  np.testing.assert_array_equal(capped.fitness(wild, inst), 3.0)
  sane_fit = capped.fitness(sane, inst)
  np.testing.assert_allclose(sane_fit, _estimator().fitness(sane, inst))
  assert (sane_fit < 3.0).all()
  with pytest.raises(ValueError, match="fitness_cap"):
    _estimator(fitness_cap=0.0)


def test_perturb_restricts_the_estimate():
  def two_part(num_steps):
    del num_steps
    return lambda th: optax.sgd(jnp.exp(th["a"]["log_lr"] + th["b"]),
                                momentum=0.9)
  est = fes.FamilyES(two_part, SHAPES[:2], num_pairs=2, sigma=0.2,
                     shapes_per_step=2, perturb=("a",))
  theta = {"a": {"log_lr": jnp.float32(np.log(0.01))}, "b": jnp.float32(0.0)}
  g, _ = est.estimate_with_metrics(theta, jax.random.key(0))
  assert float(g["b"]) == 0.0 and float(g["a"]["log_lr"]) != 0.0
  with pytest.raises(ValueError, match="not keys of theta"):
    fes.FamilyES(two_part, SHAPES[:2], num_pairs=2, shapes_per_step=2,
                 perturb=("c",)).estimate_with_metrics(theta,
                                                       jax.random.key(0))


def test_perturb_selects_nested_groups_by_path():
  theta = {"params": {"Dense_0": {"kernel": np.ones((2, 3)),
                                  "bias": np.ones(3)},
                      "Dense_1": {"kernel": np.ones((3, 1)),
                                  "bias": np.ones(1)}},
           "log_std": np.zeros(1)}
  mask = fes.perturbed_mask(theta, ("params/Dense_1",))
  assert mask["params"]["Dense_1"] == {"kernel": True, "bias": True}
  assert not any(jax.tree.leaves(mask["params"]["Dense_0"]))
  assert mask["log_std"] is False
  # A top-level key still selects its whole subtree; a prefix of a name
  # that is not a whole level selects nothing and is an error.
  assert all(jax.tree.leaves(fes.perturbed_mask(theta, ("params",))
                             ["params"]))
  with pytest.raises(ValueError, match="params/Dense_"):
    fes.perturbed_mask(theta, ("params/Dense_",))
  eps = fes.restrict(jax.tree.map(lambda x: x + 1.0, theta), mask)
  assert float(eps["params"]["Dense_0"]["kernel"].sum()) == 0.0
  assert float(eps["params"]["Dense_1"]["kernel"].sum()) == 6.0
  assert float(eps["log_std"].sum()) == 0.0


def test_outer_loop_runs_host_side_and_resumes(tmp_path):
  est = _estimator()
  trainer = MetaTrainer([est], optax.adam(0.2), clip_norm=None)
  theta0 = {"log_lr": jnp.float32(np.log(0.003))}
  state, hist = meta_train(trainer, theta0, jax.random.key(0), 3)
  assert int(state.step) == 3 and hist["num_ok"].tolist() == [4, 4, 4]
  assert float(state.theta["log_lr"]) > float(theta0["log_lr"])
  # Killed after 2 steps and resumed: the same theta as straight through.
  ckpt = MetaCheckpointer(str(tmp_path / "ck"), save_every=2)
  meta_train(trainer, theta0, jax.random.key(0), 2, checkpointer=ckpt)
  ckpt.close()
  ckpt = MetaCheckpointer(str(tmp_path / "ck"), save_every=2)
  resumed, _ = meta_train(trainer, theta0, jax.random.key(0), 3,
                          checkpointer=ckpt)
  ckpt.close()
  assert float(resumed.theta["log_lr"]) == float(state.theta["log_lr"])


def test_hypergradient_kind_round_trip(tmp_path):
  cfg = hd_kind.config(momentum=0.9)
  theta = hd_kind.theta_of(0.02, 3e-4)
  assert hd_kind.rates(theta) == pytest.approx((0.02, 3e-4), rel=1e-6)
  learned.save(str(tmp_path / "hd"), theta, cfg)
  saved = learned.load(str(tmp_path / "hd"))
  assert saved.kind == "hypergradient"
  params = {"w": jnp.array([1.0, -2.0])}
  grads = [{"w": jnp.array([0.3, 0.1])}, {"w": jnp.array([0.2, -0.4])}]

  def run(tx):
    s, out = tx.init(params), []
    for g in grads:
      u, s = tx.update(g, s, params, value=jnp.float32(1.0))
      out.append(np.asarray(u["w"]))
    return out
  from lrmeta.controllers.hypergradient import hd_sgd
  want = run(hd_sgd(0.02, 3e-4, momentum=0.9))
  got = run(saved.frozen(100).optimizer)
  for a, b in zip(want, got):
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_hd_known_answer_check_reports_a_consistent_result(tmp_path):
  """The HD known-answer check on a tiny instance: the ES path has
  both sigma phases, the ratios are ES's rates over the grid's best cell,
  the confirmation is paired over its fresh seeds, and the figure draws."""
  pairs, seeds, steps = 1, 2, 2
  hd = diagnostics.known_answer_hd(TINY, pairs=pairs, seeds=seeds,
                                   steps=steps)
  assert len(hd["es_trace"]) == 4 * steps
  assert hd["grid_best"] in [[a, b] for a in hd["grid_lrs"]
                             for b in hd["grid_betas"]]
  np.testing.assert_allclose(
      hd["ratios"], np.divide(hd["es"], hd["grid_best"]), rtol=1e-6)
  assert hd["within_1_5x"] == all(1 / 1.5 <= r <= 1.5 for r in hd["ratios"])
  fresh = hd["fresh_es_minus_grid"]
  assert fresh["n"] == hd["fresh_seeds"] == 4 * seeds
  assert fresh["ci_low"] <= fresh["mean"] <= fresh["ci_high"]
  grid = np.asarray(hd["grid_objective"], float)
  assert grid.shape == (len(hd["grid_lrs"]), len(hd["grid_betas"]))
  assert hd["grid_best_objective"] == pytest.approx(np.nanmin(grid))
  const = {"grid_rates": [0.01, 0.02, 0.04], "grid_objective": [1.1, 0.9, 3e8],
           "grid_best_lr": 0.02, "es_lr": 0.025}
  diagnostics.plot_known_answers(tmp_path / "ka.png", const, hd)
  assert (tmp_path / "ka.png").stat().st_size > 0


def test_signal_check_at_scale_writes_its_curve(tmp_path):
  """The signal check at scale on the debug family: calls of 4 pairs
  pooled to 8, MLR-SNet's weight count, the noise-free expectation beside
  each measured cosine, and the figure."""
  cfg = load_config("configs/family_es.py:debug")
  found = diagnostics.signal_check(cfg, tmp_path, pairs=8, chunk=4)
  config = family_loop.SETUPS["mlr_snet"].config(cfg)
  theta = learned.get("mlr_snet").init(jax.random.key(0), config)
  d = sum(np.size(x) for x in jax.tree.leaves(theta))
  assert found["dims"] == d
  assert [r["pairs"] for r in found["curve"]] == [4, 8]
  for r in found["curve"]:
    assert r["noise_free"] == pytest.approx(r["pairs"] / (r["pairs"] + d + 1))
    assert -1.0 <= r["es_cosine"] <= 1.0
  assert (tmp_path / "signal_check.png").stat().st_size > 0
  assert (tmp_path / "signal_check.json").exists()


@pytest.mark.slow
def test_family_meta_training_debug(tmp_path):
  cfg = load_config("configs/family_es.py:debug")
  cfg.meta.cosine_check = True
  family = family_loop.build_family(cfg)
  shapes = family_loop.training_shapes(cfg, family)
  assert shapes == family_loop.training_shapes(cfg, family)
  assert len(set(shapes)) == cfg.family.train_shapes
  held = {(i.hidden, i.num_steps) for i in family.held_out()}
  assert not held & {(s.hidden, s.num_steps) for s in shapes}
  mt = family_loop.meta_train_family(cfg, tmp_path, quiet=True)
  assert -1.0 <= mt["es_cosine"] <= 1.0
  vals = [r for r in mt["trace"] if "val_objective" in r]
  assert [r["meta_step"] for r in vals] == [0, 2, 3]
  assert all(np.isfinite(r["val_objective"]) for r in vals)
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) !=
                                                  np.asarray(b))),
                         mt["theta"], mt["theta0"])
  assert any(jax.tree.leaves(changed))


@pytest.mark.slow
def test_learned_schedule_family_job_end_to_end(tmp_path, capsys):
  """`lrmeta meta-train` on the family: meta-training, the held-out
  protocol, the saved controller and the results folder."""
  import json

  from lrmeta.experiments.cli import main
  out = tmp_path / "run"
  assert main(["meta-train", "--config", "configs/learned_lr.py:debug",
               "--quiet", f"--config.output_dir={out}"]) == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary["controller"] == "learned_schedule"
  for key in ("heldout_vs_family_cosine", "heldout_vs_instance_cosine",
              "heldout_vs_family_best", "heldout_vs_instance_best"):
    d = summary[key]
    assert d["ci_low"] <= d["mean"] <= d["ci_high"]
  # The verdict is against the best of the six baselines.
  for how in ("family", "instance"):
    best = summary[f"heldout_vs_{how}_best"]
    assert best["baseline"] in DEFAULT_BASELINES
    assert best["verdict"] in ("better", "worse", "tie")
  # The untrained schedule is constant SGD at the reference rate: exactly 1.
  assert summary["meta_objective_first"] == pytest.approx(1.0, abs=1e-6)
  for f in ("summary.md", "summary.json", "heldout.md", "meta_training.png",
            "rates.png", "meta_metrics.jsonl", "config.json"):
    assert (out / f).stat().st_size > 0, f
  saved = learned.load(str(out / "checkpoints" / "controller"))
  assert saved.kind == "learned_schedule"
  assert "pooled" in (out / "heldout.md").read_text()
  # Frozen transfer (debug: the small CNN on 1,000 Fashion-MNIST images),
  # paired against tuned cosine: the untrained schedule with its base rate
  # tuned on the same grid is constant SGD, as is the constant baseline.
  vs = summary["transfer_cnn_vs_cosine"]
  assert set(vs) == {"learned_schedule (meta-trained)",
                     "learned_schedule (untrained)", "constant", "step",
                     "warmup_cosine", "linear", "wsd"}
  assert set(summary["transfer_cnn_vs_best"]) == {
      "learned_schedule (meta-trained)", "learned_schedule (untrained)"}
  assert vs["learned_schedule (untrained)"]["mean"] == pytest.approx(
      vs["constant"]["mean"], abs=1e-4)
  assert "Transfer: fashion_mnist/small_cnn" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_staged_meta_training_is_config(tmp_path):
  """``meta.stages``: the knots alone, then every parameter, meta-steps
  split between the stages, the second from the first's theta, one trace."""
  cfg = load_config("configs/learned_lr.py:debug")
  cfg.meta.meta_steps, cfg.meta.cosine_check = 3, False
  cfg.meta.stages = ("knots", "")
  assert family_loop.stage_steps(3, 2) == (1, 2)
  mt = family_loop.meta_train_staged(cfg, tmp_path)
  assert [r["meta_step"] for r in mt["trace"]] == [0, 1, 2, 3]
  first = learned.load(str(tmp_path / "stage1" / "controller")).theta
  # Stage 1 perturbs the knots only: every other parameter is as initialised.
  for key in mt["theta0"]:
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)),
                        first[key], mt["theta0"][key])
    assert all(jax.tree.leaves(same)) == (key != "knots"), key
  last = learned.load(str(tmp_path / "stage2" / "controller")).theta
  np.testing.assert_array_equal(np.asarray(last["knots"]),
                                np.asarray(mt["theta"]["knots"]))
