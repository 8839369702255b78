"""`lrmeta meta-train` end to end: the debug variant on real Fashion-MNIST."""

import json

import jax
import numpy as np
import pytest

from lrmeta import learned
from lrmeta.cli import main
from lrmeta.controllers.mlr_snet import init_mlr_snet_params
from lrmeta.experiments import meta_loop
from lrmeta.experiments.config import changed_keys, load_config
from lrmeta.experiments.build import build_task
from lrmeta.meta import PES, AntitheticES, TaskProblem
from lrmeta.train import train
from lrmeta.protocol import grid_rate

CFG = "configs/mlrsnet_fmnist.py"


def test_bad_estimator_and_variant_are_named(tmp_path, capsys):
  for key, value in [("meta.estimator", "nope"), ("meta.lr", "-1.0")]:
    assert main(["meta-train", "--config", CFG + ":debug", "--quiet",
                 f"--config.output_dir={tmp_path}",
                 f"--config.{key}={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and key in err[0]
  with pytest.raises(ValueError, match="unknown variant"):
    load_config(CFG + ":huge")


@pytest.mark.parametrize("variant,estimator,kind", [
    ("small_es", "es", AntitheticES), ("small_pes", "pes", PES)])
def test_es_variants_change_only_the_meta_objective(variant, estimator, kind):
  """small_es / small_pes are the small set-up with another estimator: the
  task, inner optimizer, meta-test and transfer are the same, so their
  tables compare with small's; the job builds the estimator they name."""
  small = load_config(CFG + ":small")
  cfg = load_config(CFG + ":" + variant)
  changed = changed_keys(small, cfg)
  assert "meta.estimator" in changed and cfg.meta.estimator == estimator
  assert all(k == "output_dir" or k.startswith("meta.") for k in changed), (
      changed)
  problem = TaskProblem(build_task(load_config(CFG + ":debug")),
                        lambda th: None)
  est = meta_loop.estimator(cfg, problem)
  assert isinstance(est, kind)
  assert (est.num_pairs, est.sigma) == (cfg.meta.es_pairs, cfg.meta.es_sigma)
  assert (est.horizon, est.window) == (cfg.meta.horizon, cfg.meta.window)
  if estimator == "es":  # whole runs: the meta-loss at the end of training
    assert est.window == est.horizon == cfg.test.steps


@pytest.mark.slow
def test_es_meta_training_moves_theta(tmp_path, capsys):
  """The ES estimator through the job: finite meta-losses and a theta that
  moved (two meta-steps of the debug variant)."""
  out = tmp_path / "es"
  main(["meta-train", "--config", CFG + ":debug", "--quiet",
        f"--config.output_dir={out}", "--config.meta.estimator=es",
        "--config.meta.window=12", "--config.meta.meta_steps=2",
        "--config.test.schedules=('cosine',)"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary["meta_estimator"] == "es"
  trace = [json.loads(l) for l in
           (out / "meta_metrics.jsonl").read_text().splitlines()]
  assert len(trace) == 2 and all(np.isfinite(r["meta_loss"]) for r in trace)
  theta = learned.load(str(out / "checkpoints" / "controller")).theta
  theta0 = init_mlr_snet_params(jax.random.key(0))
  assert max(float(np.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(theta), jax.tree.leaves(theta0))) > 1e-4


@pytest.mark.slow
def test_debug_meta_train_end_to_end(tmp_path, capsys):
  out = tmp_path / "run"
  # Constant and step baselines run the same code as cosine: skip them to
  # keep the test under a minute on one core.
  main(["meta-train", "--config", CFG + ":debug", "--quiet",
        f"--config.output_dir={out}", "--config.test.schedules=('cosine',)"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  for f in ("config.json", "meta_metrics.jsonl", "metrics.jsonl",
            "summary.md", "summary.json", "meta_training.png", "curves.png"):
    assert (out / f).stat().st_size > 0, f
  cfg = load_config(CFG + ":debug")
  trace = [json.loads(l) for l in
           (out / "meta_metrics.jsonl").read_text().splitlines()]
  assert [r["meta_step"] for r in trace] == list(
      range(1, cfg.meta.meta_steps + 1))
  assert all(np.isfinite(r["meta_loss"]) and not r["skipped"] for r in trace)

  # Meta-training moved theta away from the default initialisation, and the
  # learned controller lowers the meta-objective (final validation loss) on
  # fresh networks whose seeds meta-training never saw.
  _, theta, meta_cfg = learned.load(str(out / "checkpoints" / "controller"))
  theta0 = init_mlr_snet_params(jax.random.key(cfg.seed))
  moved = max(float(np.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(theta), jax.tree.leaves(theta0)))
  assert moved > 1e-3
  assert meta_cfg["controller"] == "mlr_snet"
  assert (summary["heldout_val_loss_learned"]
          < summary["heldout_val_loss_untrained"])
  assert set(summary["test_acc"]) == {
      "MLR-SNet (meta-trained)", "MLR-SNet (untrained init)",
      "cosine (tuned)"}
  # A rate of the grid or of its widening past an edge (at most 4 steps).
  assert summary["tuned_lr"]["cosine (tuned)"] == pytest.approx(min(
      (grid_rate(cfg.test.lr_grid, k)
       for k in range(-4, len(cfg.test.lr_grid) + 4)),
      key=lambda r: abs(r - summary["tuned_lr"]["cosine (tuned)"])))

  # The saved controller, reloaded frozen, retrains seed 1000 to the
  # accuracy the job recorded for it.
  task = build_task(cfg)
  steps = cfg.test.steps
  _, hist = train(task, learned.frozen(
      str(out / "checkpoints" / "controller"), steps).optimizer,
      jax.random.key(1000),
      steps, eval_every=steps, eval_examples=cfg.test.eval_examples,
      progress=False)
  rows = [json.loads(l) for l in
          (out / "metrics.jsonl").read_text().splitlines()]
  rec = [r for r in rows if r["method"] == "MLR-SNet (meta-trained)"
         and r["seed"] == 1000 and r["step"] == steps]
  assert len(rec) == 1
  assert abs(float(hist.final("test_acc")) - rec[0]["test_acc"]) <= 0.01
  assert np.all(hist.steps["lr"] > 0)
