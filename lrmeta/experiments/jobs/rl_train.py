"""The `lrmeta rl-train` job: train an RL learning-rate policy, test it
against tuned hand-designed schedules, transfer it unchanged.

``cfg.scope``: ``"task"`` (one task, ``configs/rl_fmnist.py``) or
``"family"`` (:mod:`lrmeta.experiments.rl_family`). ``cfg.env.mode``:
``"lrmeta"`` (lrmeta's environment, :mod:`lrmeta.rl.env`) or ``"xu2019"``
(that of Xu, Dai, Kemp, Metz 2019 as their released code builds it,
:mod:`lrmeta.rl.xu2019`).

Stages:

1. Training (:mod:`lrmeta.experiments.rl_loop`).
2. Test on the training task: every method's base rate (the schedules' peak
   rate, the policy's starting rate) is tuned on the validation split over
   one grid with ``eval.tune_seeds``; the tuned methods then run on
   ``eval.test_seeds`` (:func:`lrmeta.protocol.compare`); the policy's
   verdict is against the best schedule (:func:`lrmeta.protocol.
   versus_best`, paired interval over test seeds). The schedules run on the
   environment's inner optimizer (SGD with momentum, or Adam for
   ``"xu2019"``). Besides the final test accuracy, the table gives the test
   accuracy at the evaluation point of lowest validation loss (what the
   authors' script records, at the granularity of ``eval.num_evals``).
3. Transfer (optional): the same on each section of ``cfg.transfer.tasks``
   (:mod:`lrmeta.experiments.transfer`'s schema and stage), policy frozen.

The results folder holds ``config.json``, ``training.jsonl``,
``metrics.jsonl``, ``summary.md``, ``summary.json``, ``timings.json``,
``controller/`` (the actor; in ``"lrmeta"`` mode for ``lrmeta evaluate``),
``ckpt/`` and the figures ``training.png``, ``task_curves.png``,
``transfer_<name>_curves.png``."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import numpy as np

from lrmeta import learned
from lrmeta.controllers.rl_xu2019 import xu2019_adam, xu2019_signals
from lrmeta.experiments import results as res
from lrmeta.experiments import rl_loop
from lrmeta.experiments import transfer as tf
from lrmeta.learned import rl_policy as rl
from lrmeta.meta.checkpoint import save_controller
from lrmeta.protocol import Method, Protocol, paired_difference

POLICY = "rl_policy"
HEADER = ["method", "tuned base lr", "test acc", "test loss", "val acc",
          "test acc at best val"]
COLUMNS = ("test_acc", "test_loss", "val_acc")


def run(cfg, *, quiet: bool = False) -> dict:
  """Runs the stages; writes the results folder; returns the summary (also
  printed as the last line)."""
  if rl_loop.choice(cfg, "scope", rl_loop.SCOPES) == "family":
    from lrmeta.experiments import rl_family  # pylint: disable=import-outside-toplevel
    return rl_family.run(cfg, quiet=quiet)
  rl_loop.choice(cfg, "env.mode", rl_loop.ENV_MODES)
  with res.results_folder(cfg.output_dir, keep=("ckpt",)) as out:
    summary = _run(cfg, out, quiet)
  print(json.dumps(summary))
  return summary


@dataclasses.dataclass(frozen=True)
class Trained:
  """A trained policy: how to run it frozen on a task of ``steps`` steps,
  the inner optimizer the schedules share with it, what to save."""

  actor: object
  history: list
  optimizer: str
  saved: dict

  def method(self, cfg, task, steps) -> Method:
    det = cfg.eval.deterministic
    if cfg.env.mode == "xu2019":
      xc = rl_loop.xu2019_config(cfg, steps)
      shape = (task.batch_size, int(task.dataset.num_classes))
      return Method(lambda lr: xu2019_adam(self.actor, xc, lr, shape,
                                           deterministic=det),
                    xu2019_signals(xc))
    return Method(lambda lr: rl.CONTROLLER.optimizer(
        self.actor, self.saved, steps, learning_rate=lr, deterministic=det),
                  rl.CONTROLLER.signals(self.saved, steps))


def _train(cfg, task, out, quiet) -> Trained:
  steps = int(cfg.env.total_steps)
  common = {"algo": cfg.algo, "base_lr": cfg.env.base_lr,
            "trained_on": task.name, "train_steps": steps}
  if cfg.env.mode == "xu2019":
    actor, history = rl_loop.train_xu2019_policy(cfg, task, quiet=quiet)
    saved = {"controller": "rl_xu2019", "env_mode": "xu2019",
             "xu2019": dict(cfg.xu2019), **common}
    return Trained(actor, history, "adam", saved)
  envs = rl_loop.training_envs(cfg, task)
  pcfg = envs[0].policy_cfg
  actor, history = rl_loop.train_policy(cfg, envs, out, quiet=quiet)
  saved = {"controller": POLICY, "policy": rl.policy_dict(pcfg),
           "momentum": cfg.env.momentum,
           "val_batch_size": cfg.env.val_batch_size,
           "train_label_noise": list(cfg.env.train_label_noise),
           "iterations": len(history), **common}
  return Trained(actor, history, "sgd", saved)


def _stage(cfg, task, protocol, baselines, trained: Trained, log):
  """Tuned schedules and the policy, frozen, on ``task``
  (:func:`lrmeta.experiments.transfer.judge_frozen`, the stage every job
  judges frozen controllers with): ``(results, the policy against the best
  schedule)``."""
  stage = tf.judge_frozen(
      task, {POLICY: trained.method(cfg, task, protocol.steps)}, protocol,
      baselines=tuple(baselines), optimizer=trained.optimizer,
      momentum=cfg.env.momentum, quiet=False, log=log)
  return stage["results"], stage["vs_best"][POLICY]


def at_best_val(r) -> np.ndarray:
  """Per test seed: the test accuracy (%) at the evaluation point of lowest
  validation loss (a diverged run's NaN losses never win)."""
  val = np.asarray(r.hist.evals["val_loss"], np.float64)
  val = np.where(np.isfinite(val), val, np.inf)
  idx = np.argmin(val, axis=-1)
  acc = np.asarray(r.hist.evals["test_acc"], np.float64)
  return 100.0 * np.take_along_axis(acc, idx[:, None], -1)[:, 0]


def _table(results, vs):
  best = {n: at_best_val(r) for n, r in results.items()}
  rows = [row + [f"{best[row[0]].mean():.2f} ± {best[row[0]].std():.2f}"]
          for row in res.result_rows(results, COLUMNS)]
  d = paired_difference(best[POLICY], best[vs["baseline"]])
  note = (f"Policy minus the best schedule ({vs['baseline']}), paired over "
          f"{vs['n']} test seeds, 95 % interval: final test accuracy "
          f"{vs['mean']:+.2f} [{vs['ci_low']:+.2f}, {vs['ci_high']:+.2f}] "
          f"points ({vs['verdict']}); test accuracy at best validation "
          f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}].")
  return res.markdown_table(HEADER, rows) + "\n\n" + note, d


def _records(tag, results):
  return [rec for n, r in results.items()
          for rec in res.eval_records(n, r.seeds, r.hist, task=tag, lr=r.lr)]


def _stage_summary(results, vs, d_best) -> dict:
  return {"test_acc": {n: res.mean_std(r.hist.final("test_acc"))
                       for n, r in results.items()},
          "tuned_lr": {n: r.lr for n, r in results.items()},
          "best_schedule": vs["baseline"], "rl_vs_best_schedule": vs,
          "rl_vs_best_schedule_at_best_val": d_best}


def _run(cfg, out, quiet) -> dict:
  t_start = time.perf_counter()
  log = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
  res.write_config(out, cfg)
  task = rl_loop.build_task(cfg)
  steps = int(cfg.env.total_steps)
  log(f"[1/3] {cfg.algo} in the {cfg.env.mode!r} environment on {task.name}:"
      f" {steps} steps/episode (batch {task.batch_size}, "
      f"{task.dataset.num_train} training images)")
  trained = _train(cfg, task, out, quiet)
  res.write_jsonl(out / "training.jsonl", trained.history)
  res.plot_rl_training(out / "training.png", trained.history,
                       f"{cfg.name}: {cfg.algo} ({cfg.env.mode})")
  log(f"[2/3] test on {task.dataset.name}: tuned base rates over "
      f"{tuple(cfg.eval.lr_grid)} (tune seeds {tuple(cfg.eval.tune_seeds)}), "
      f"test seeds {tuple(cfg.eval.test_seeds)}")
  e = cfg.eval
  fm, vs = _stage(cfg, task, Protocol(
      steps, tuple(e.lr_grid), tuple(e.tune_seeds), tuple(e.test_seeds),
      num_evals=e.num_evals, eval_examples=e.eval_examples or None,
      executor="sequential"), e.schedules, trained, log)
  trained.saved["base_lr"] = fm[POLICY].lr
  if cfg.env.mode == "lrmeta":
    learned.save(str(out / "controller"), trained.actor, trained.saved)
  else:  # the actor and its config, not a kind `lrmeta evaluate` loads
    save_controller(str(out / "controller"), trained.actor, trained.saved)
  metrics = _records(task.name, fm)
  table, d_best = _table(fm, vs)
  h = trained.history
  summary = {"results_dir": str(pathlib.Path(cfg.output_dir)),
             "env_mode": cfg.env.mode, "algo": cfg.algo, "steps": steps,
             "iterations": len(h), "first_return": h[0]["episode_return"],
             "last_return": h[-1]["episode_return"],
             **_stage_summary(fm, vs, d_best),
             "rl_minus_best_schedule": vs["mean"] / 100}
  res.plot_runs(out / "task_curves.png",
                {n: res.curve(r.hist) for n, r in fm.items()},
                f"{task.name}: tuned schedules vs RL policy")
  note = (f"{cfg.env.mode!r} environment. {task.dataset.name}, "
          f"{cfg.task.model}, {task.dataset.num_train} training images, "
          f"{steps} steps of batch {task.batch_size}, inner optimizer "
          f"{trained.optimizer}; base rates tuned on validation over "
          f"{tuple(cfg.eval.lr_grid)} with seeds {tuple(cfg.eval.tune_seeds)}"
          f"; test seeds {tuple(cfg.eval.test_seeds)}; policy trained by "
          f"{cfg.algo} for {len(h)} episodes/iterations on seed {cfg.seed}"
          f"{rl_loop.task_family_note(cfg, 'iterations')}.")
  sections = [(None, note, table)]
  for name in cfg.transfer.tasks if cfg.transfer.enabled else ():
    records, summary[f"transfer_{name}"], section = _transfer(
        cfg, name, trained, out, log)
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


def _transfer(cfg, name, trained: Trained, out, log):
  """The policy, frozen, on transfer section ``name`` against the tuned
  schedules; ``(metric records, summary, section)``."""
  t = cfg.transfer[name]
  ttask, tsteps = tf.transfer_task(t), int(t.steps)
  log(f"[3/3] transfer to {ttask.dataset.name} / {t.model}: {tsteps} steps "
      f"of batch {t.batch_size}, policy unchanged")
  tr, tvs = _stage(cfg, ttask, tf.section_protocol(t),
                   tuple(t.baselines) or cfg.eval.schedules, trained, log)
  res.plot_runs(out / f"transfer_{name}_curves.png",
                {n: res.curve(r.hist) for n, r in tr.items()},
                f"transfer to {ttask.name}")
  table, d_best = _table(tr, tvs)
  summary = {"task": ttask.name, "data": ttask.dataset.name, "steps": tsteps,
             **_stage_summary(tr, tvs, d_best),
             "rl_minus_" + tvs["baseline"]: tvs["mean"] / 100}
  if cfg.env.mode == "lrmeta":
    pcfg = rl_loop.policy_config(cfg)
    how = (f"one decision every "
           f"{rl.scaled_policy_config(pcfg, tsteps).steps_per_action} steps")
  else:
    how = "a multiplier every step, as in training"
  section = (
      f"Transfer: {ttask.dataset.name}, {t.model}",
      f"{ttask.dataset.num_train} training images, {tsteps} steps of batch "
      f"{t.batch_size}, rates tuned over {tuple(t.lr_grid)}, test seeds "
      f"{tuple(t.test_seeds)}; the policy unchanged ({how}).", table)
  return _records(ttask.name, tr), summary, section
