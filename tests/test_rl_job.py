"""`lrmeta rl-train`: the debug variant end to end on real Fashion-MNIST."""

import json

import jax
import numpy as np
import pytest

from lrmeta import learned
from lrmeta.cli import main
from lrmeta.experiments import paper_tables, rl_loop
from lrmeta.experiments.config import changed_keys, flatten, load_config
from lrmeta.learned.rl_policy import initial_actor, policy_trace
from lrmeta.train import init_state, run_steps
from lrmeta.protocol import grid_rate
from script_module import load_script

CFG = "configs/rl_fmnist.py"


def test_variants_and_bad_values_are_named(capsys):
  for v in ("", "small", "debug", "xu2017", "xu2017_small", "cifar_small"):
    cfg = load_config(f"{CFG}:{v}")
    # The episode is a whole number of decisions.
    assert cfg.env.total_steps % cfg.env.steps_per_action == 0
    assert not set(cfg.eval.tune_seeds) & set(cfg.eval.test_seeds)
  with pytest.raises(ValueError, match="unknown variant"):
    load_config(CFG + ":huge")
  for key, value in [("env.init_log_lr_range", "-1.0"),
                     ("env.train_label_noise", "(0.5, 1.5)")]:
    assert main(["rl-train", "--config", CFG + ":debug", "--quiet",
                 f"--config.{key}={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and key in err[0]


def test_initial_actor_keeps_the_rate():
  cfg = load_config(CFG + ":debug")
  pcfg = rl_loop.policy_config(cfg)
  actor = initial_actor(pcfg, jax.random.key(0), 3.0)
  from lrmeta.controllers.rl_policy import make_policy_net
  logits = make_policy_net(pcfg).apply(actor, np.zeros(pcfg.obs_dim, "f4"))
  assert pcfg.factors[int(np.argmax(logits))] == 1.0


def test_cifar_variant_is_small_with_the_direction_swapped():
  """Trains on CIFAR-10 and transfers to Fashion-MNIST over the same budget;
  nothing else differs from the small variant."""
  small = load_config(CFG + ":small")
  cif = load_config(CFG + ":cifar_small")
  changed = changed_keys(small, cif)
  assert changed <= {"name", "output_dir", "task.dataset"} | {
      k for k in flatten(small) | flatten(cif) if k.startswith("transfer.")}
  assert cif.task.dataset == "cifar10" and "task.dataset" in changed
  assert cif.transfer.tasks == ("cnn",)
  assert cif.transfer.cnn.dataset == "fashion_mnist"
  assert cif.transfer.cnn.steps == cif.env.total_steps


@pytest.mark.slow
def test_debug_job_end_to_end(tmp_path, capsys):
  out = tmp_path / "rl"
  main(["rl-train", "--config", CFG + ":debug", "--quiet",
        f"--config.output_dir={out}"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  for f in ("config.json", "training.jsonl", "metrics.jsonl", "summary.md",
            "summary.json", "training.png", "task_curves.png"):
    assert (out / f).stat().st_size > 0, f
  cfg = load_config(CFG + ":debug")
  hist = [json.loads(l) for l in (out / "training.jsonl").read_text()
          .splitlines()]
  assert len(hist) == cfg.ppo.iterations
  assert all(np.isfinite(h["episode_return"]) for h in hist)
  # Iterations cycle the clean task and its label-noise copies.
  k = 1 + len(cfg.env.train_label_noise)
  assert k > 1 and [h["env_index"] for h in hist] == [
      i % k for i in range(len(hist))]
  assert set(summary["test_acc"]) == {*cfg.eval.schedules, "rl_policy"}
  for name, acc in summary["test_acc"].items():
    # 12 steps on real data already beat chance (0.1) clearly.
    assert 0.12 < float(acc.split()[0]) <= 1.0, name
  # A rate of the grid or of its widening past an edge (at most 4 steps).
  assert summary["tuned_lr"]["rl_policy"] == pytest.approx(min(
      (grid_rate(cfg.eval.lr_grid, k)
       for k in range(-4, len(cfg.eval.lr_grid) + 4)),
      key=lambda r: abs(r - summary["tuned_lr"]["rl_policy"])))

  # The saved controller, rebuilt by `learned.frozen`, reproduces the
  # job's own test run of the policy (same seed, rate and budget).
  rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text()
          .splitlines()]
  mine = [r for r in rows if r["method"] == "rl_policy"
          and r["seed"] == cfg.eval.test_seeds[0]]
  steps = cfg.env.total_steps
  task = rl_loop.build_task(cfg)
  ckpt = str(out / "controller")
  opt, signals = learned.frozen(ckpt, steps)
  st = init_state(task, opt, jax.random.key(cfg.eval.test_seeds[0]))
  st, m = jax.jit(lambda s: run_steps(task, opt, s, steps, signals=signals)
                  )(st)
  acc = float(task.evaluate(st.params, st.model_state, "test",
                            cfg.eval.eval_examples)["accuracy"])
  assert acc == pytest.approx(mine[-1]["test_acc"], abs=0.011)
  assert float(m["lr"][0]) == pytest.approx(summary["tuned_lr"]["rl_policy"],
                                            rel=1e-5)

  # The decision-by-decision trace replays the same run: its per-window
  # rates are the rates that run applied.
  tr = policy_trace(ckpt, task, steps,
                           jax.random.key(cfg.eval.test_seeds[0]))
  windows = steps // cfg.env.steps_per_action
  assert tr["obs"].shape == (windows, 12) and np.isfinite(tr["obs"]).all()
  np.testing.assert_allclose(tr["probs"].sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(
      tr["lr"], np.asarray(m["lr"]).reshape(windows, -1).mean(1), rtol=1e-5)
  trace = load_script("trace_rl_policy")
  trace.main([str(out)])
  assert "greedy factor per decision" in (out / "trace.md").read_text()

  # The paper-table script rebuilds its table from this finished run alone,
  # describing the run as configured (the debug variant), not the variant
  # its --small flag would load.
  script = load_script("reproduce_xu2019")
  capsys.readouterr()
  script.main(["--small", "--table-only", f"--config.output_dir={out}"])
  md = (out / "table.md").read_text()
  assert md == capsys.readouterr().out.split("\n{")[0].rstrip("\n") + "\n"
  assert f"{summary['steps']} steps of batch {cfg.task.batch_size}" in md
  assert f"| rl_policy | {summary['tuned_lr']['rl_policy']} |" in md
  assert "Tables 1-2" in md  # the paper's own numbers ride along
  assert f"symmetric noise {list(cfg.env.train_label_noise)}" in md


def test_transfer_table_renders_the_transfer_stage_of_a_summary():
  cfg = load_config(CFG + ":xu2017_small")
  summary = {"transfer_cifar": {
      "task": "cifar10/resnet8", "data": "CIFAR-10 (JPEG copy)", "steps": 312,
      "test_acc": {"cosine": "0.3736 ± 0.0151", "rl_policy": "0.3424 ± 0.0132"},
      "tuned_lr": {"cosine": 0.2, "rl_policy": 0.5},
      "rl_minus_cosine": -0.0312}}
  text = "\n".join(paper_tables.transfer_table(cfg, summary, "actor-critic policy"))
  assert "| actor-critic policy | 0.5 | 0.3424 ± 0.0132 |" in text
  assert "| cosine | 0.2 | 0.3736 ± 0.0151 |" in text
  assert "actor-critic policy minus cosine: -3.12 points." in text
  assert "(CIFAR-10 (JPEG copy))" in text and "312 steps of batch 32" in text
  summary["transfer_cifar"]["data"] = "CIFAR-10"  # a run on TFDS data
  text = "\n".join(paper_tables.transfer_table(cfg, summary))
  assert "cifar10/resnet8 (CIFAR-10)," in text and "JPEG" not in text
  assert paper_tables.transfer_table(cfg, {}) == []


@pytest.mark.slow
def test_single_task_transfer_runs_through_the_transfer_stage(tmp_path, capsys):
  """The single-task job transfers through the one transfer stage and
  schema (a section of ``transfer.tasks``): the frozen policy against the
  section's tuned baselines, its verdict against the best of them."""
  out = tmp_path / "rl"
  sec = "--config.transfer.cifar."
  main(["rl-train", "--config", CFG + ":debug", "--quiet",
        f"--config.output_dir={out}", "--config.transfer.enabled=True",
        "--config.transfer.tasks=('cifar',)", f"{sec}dataset=fashion_mnist",
        f"{sec}model=small_cnn", f"{sec}steps=8", f"{sec}eval_every=4",
        f"{sec}max_train=500", f"{sec}num_val=200", f"{sec}batch_size=16",
        f"{sec}lr_grid=(0.05,0.2)", f"{sec}test_seeds=(1000,1001)",
        f"{sec}baselines=('cosine','wsd')", f"{sec}eval_examples=200"])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  t = summary["transfer_cifar"]
  assert t["task"] == "fashion_mnist/small_cnn" and t["steps"] == 8
  assert set(t["test_acc"]) == {"cosine", "wsd", "rl_policy"}
  assert t["best_schedule"] in ("cosine", "wsd")
  assert t["rl_vs_best_schedule"]["n"] == 2
  assert (out / "transfer_cifar_curves.png").stat().st_size > 0
  assert "## Transfer: Fashion-MNIST, small_cnn" in (
      out / "summary.md").read_text()
