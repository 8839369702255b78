"""The `lrmeta rl-train` job: train an RL learning-rate policy, test it
against tuned hand-designed schedules, transfer it unchanged.

Stages (config: ``configs/rl_fmnist.py``):

1. Training: PPO (Xu, Dai, Kemp, Metz 2019 set-up) or the actor-critic of
   Xu, Qin et al. (2017) over a batch of training runs of the task, one
   episode per run (:mod:`lrmeta.experiments.rl_loop`; resumable).
2. Test on the training task: every method's base rate (the schedules' peak
   rate, the policy's starting rate) is tuned on the validation split over
   one grid with ``eval.tune_seeds``; the tuned methods then run on
   ``eval.test_seeds``, disjoint from the training and tuning seeds
   (:func:`lrmeta.protocol.compare`, sequential executor); the policy's
   verdict is against the best schedule (:func:`lrmeta.protocol.
   versus_best`: paired interval over test seeds).
3. Transfer (optional): the same on another dataset/model with the frozen
   policy unchanged; its decision interval scales with the budget so it
   takes as many decisions as in training.

The results folder holds ``config.json``, ``training.jsonl`` (one line per
iteration), ``metrics.jsonl``, ``summary.md``, ``summary.json``,
``timings.json``, ``controller/`` (the frozen policy, for ``lrmeta
evaluate``), ``ckpt/`` and the figures ``training.png``,
``task_curves.png`` and ``transfer_curves.png``.
"""

from __future__ import annotations

import json
import pathlib
import time

import jax

from lrmeta import learned
from lrmeta.experiments import results as res
from lrmeta.experiments import rl_loop
from lrmeta.learned import rl_policy as rl
from lrmeta.protocol import (Method, Protocol, compare, schedule_method,
                             versus_best)

POLICY = "rl_policy"
HEADER = ["method", "tuned base lr", "test acc", "test loss", "val acc"]
COLUMNS = ("test_acc", "test_loss", "val_acc")


def _methods(cfg, schedules, actor, saved_cfg, steps) -> dict[str, Method]:
  methods = {n: schedule_method(n, steps, momentum=cfg.env.momentum)
             for n in schedules}
  methods[POLICY] = Method(
      lambda lr: rl.CONTROLLER.optimizer(
          actor, saved_cfg, steps, learning_rate=lr,
          deterministic=cfg.eval.deterministic),
      rl.CONTROLLER.signals(saved_cfg, steps))
  return methods


def _stage(cfg, task, steps, stage, actor, saved_cfg, log):
  """Tuned schedules and the policy on ``task`` (``stage``: the grid and
  seeds of ``cfg.eval`` or ``cfg.transfer``)."""
  protocol = Protocol(steps, tuple(stage.lr_grid), tuple(stage.tune_seeds),
                      tuple(stage.test_seeds), num_evals=cfg.eval.num_evals,
                      eval_examples=stage.eval_examples or None,
                      executor="sequential")
  results = compare(task, _methods(cfg, stage.schedules, actor, saved_cfg,
                                   steps), protocol, log=log)
  vs = versus_best(results, POLICY, [n for n in results if n != POLICY])
  return results, vs


def _records(tag, results):
  return [rec for n, r in results.items()
          for rec in res.eval_records(n, r.seeds, r.hist, task=tag, lr=r.lr)]


def run(cfg, *, quiet: bool = False) -> dict:
  """Runs the three stages; writes the results folder; returns the summary
  (also printed as the last line). A config with a ``family`` section trains
  over the task family instead (:mod:`lrmeta.experiments.rl_family`)."""
  if "family" in cfg:
    from lrmeta.experiments import rl_family  # pylint: disable=import-outside-toplevel
    return rl_family.run(cfg, quiet=quiet)
  with res.results_folder(cfg.output_dir, keep=("ckpt",)) as out:
    summary = _run(cfg, out, quiet)
  print(json.dumps(summary))
  return summary


def _run(cfg, out, quiet) -> dict:
  t_start = time.perf_counter()
  log = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
  res.write_config(out, cfg)
  task = rl_loop.build_task(cfg)
  envs = rl_loop.training_envs(cfg, task)
  pcfg = envs[0].policy_cfg
  steps = pcfg.total_steps
  noise = tuple(cfg.env.train_label_noise)
  log(f"[1/3] {cfg.algo} on {task.name}"
      + (f" (and with label noise {noise}, cycled)" if noise else "")
      + f": {steps} steps/episode (batch {task.batch_size}, "
      f"{task.dataset.num_train} training images), a decision every "
      f"{pcfg.steps_per_action} steps")
  actor, history = rl_loop.train_policy(cfg, envs, out, quiet=quiet)
  res.write_jsonl(out / "training.jsonl", history)
  res.plot_rl_training(out / "training.png", history,
                       f"{cfg.name}: {cfg.algo}")

  log(f"[2/3] test on {task.dataset.name}: tuned base rates over "
      f"{tuple(cfg.eval.lr_grid)} (tune seeds {tuple(cfg.eval.tune_seeds)}), "
      f"test seeds {tuple(cfg.eval.test_seeds)}")
  saved_cfg = {"controller": POLICY, "algo": cfg.algo,
               "policy": rl.policy_dict(pcfg), "base_lr": cfg.env.base_lr,
               "momentum": cfg.env.momentum,
               "val_batch_size": cfg.env.val_batch_size,
               "trained_on": task.name, "train_label_noise": list(noise),
               "train_steps": steps, "iterations": len(history)}
  fm, vs = _stage(cfg, task, steps, cfg.eval, actor, saved_cfg, log)
  saved_cfg["base_lr"] = fm[POLICY].lr
  learned.save(str(out / "controller"), actor, saved_cfg)
  metrics = _records(task.name, fm)
  clean = [m for m in history if m.get("env_index", 0) == 0]
  summary = {"results_dir": str(pathlib.Path(cfg.output_dir)),
             "algo": cfg.algo, "steps": steps, "iterations": len(history),
             # returns on the clean task (env 0), first and last iteration
             "first_return": clean[0]["episode_return"],
             "last_return": clean[-1]["episode_return"],
             "test_acc": {n: res.mean_std(r.hist.final("test_acc"))
                          for n, r in fm.items()},
             "tuned_lr": {n: r.lr for n, r in fm.items()},
             "best_schedule": vs["baseline"],
             "rl_minus_best_schedule": vs["mean"] / 100, "rl_vs_best_schedule": vs}
  res.plot_runs(out / "task_curves.png",
                {n: res.curve(r.hist) for n, r in fm.items()},
                f"{task.name}: tuned schedules vs RL policy")
  note = (f"{task.dataset.name}, {cfg.task.model} (widths "
          f"{tuple(cfg.model.features)}/{cfg.model.hidden}), "
          f"{task.dataset.num_train} training images, {steps} steps of batch "
          f"{task.batch_size}, SGD momentum {cfg.env.momentum}; base rates "
          f"tuned on validation over {tuple(cfg.eval.lr_grid)} with seeds "
          f"{tuple(cfg.eval.tune_seeds)}; test seeds "
          f"{tuple(cfg.eval.test_seeds)}; policy trained by {cfg.algo} for "
          f"{len(history)} iterations on seed {cfg.seed}"
          f"{rl_loop.task_family_note(cfg, 'iterations')}.")
  sections = [(None, note, res.markdown_table(
      HEADER, res.result_rows(fm, COLUMNS)))]

  if cfg.transfer.enabled:
    records, summary["transfer"], section = _transfer(
        cfg, actor, saved_cfg, pcfg, out, log)
    metrics += records
    sections.append(section)
  res.write_jsonl(out / "metrics.jsonl", metrics)
  summary["wall_s"] = round(time.perf_counter() - t_start, 1)
  res.write_timings(out, {"total": summary["wall_s"]})
  text = res.write_summary(out, cfg.name, sections)
  (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
  log("\n" + text + f"\nbackend {jax.default_backend()}; results written to "
      f"{cfg.output_dir}/")
  return summary


def _transfer(cfg, actor, saved_cfg, pcfg, out, log):
  """The policy, unchanged, on the transfer task against the tuned
  schedules: ``(metric records, summary, section)``."""
  t = cfg.transfer
  ttask, tsteps = rl_loop.transfer_task(cfg)
  log(f"[3/3] transfer to {ttask.dataset.name} / {t.model}: {tsteps} steps "
      f"of batch {t.batch_size} ({t.epochs} epochs of "
      f"{ttask.dataset.num_train} images), policy unchanged")
  tr, tvs = _stage(cfg, ttask, tsteps, t, actor, saved_cfg, log)
  res.plot_runs(out / "transfer_curves.png",
                {n: res.curve(r.hist) for n, r in tr.items()},
                f"transfer to {ttask.name}")
  summary = {
      "task": ttask.name, "data": ttask.dataset.name, "steps": tsteps,
      "test_acc": {n: res.mean_std(r.hist.final("test_acc"))
                   for n, r in tr.items()},
      "tuned_lr": {n: r.lr for n, r in tr.items()},
      "rl_minus_" + tvs["baseline"]: tvs["mean"] / 100,
      "rl_vs_best_schedule": tvs}
  decisions = rl.scaled_policy_config(pcfg, tsteps).steps_per_action
  section = (
      f"Transfer: {ttask.dataset.name}, {t.model}",
      f"{ttask.dataset.num_train} training images, {tsteps} steps of batch "
      f"{t.batch_size} ({t.epochs} epochs), rates tuned over "
      f"{tuple(t.lr_grid)}, test seeds {tuple(t.test_seeds)}; the policy "
      f"unchanged (one decision every {decisions} steps).",
      res.markdown_table(HEADER, res.result_rows(tr, COLUMNS)))
  return _records(ttask.name, tr), summary, section
