"""The `lrmeta meta-train` job: meta-train MLR-SNet, meta-test it, transfer it.

1. Meta-training from the default initialisation with the estimator named by
   ``cfg.meta.estimator`` (see ``configs/mlrsnet_fmnist.py``): truncated
   backprop through windows of a run (the default), full unrolled backprop,
   the paper's one-step look-ahead, antithetic ES or PES. Meta-training state is
   checkpointed every ``cfg.meta.save_every`` meta-steps and a rerun of the
   same config resumes from it.
2. Meta-test: fresh networks (seeds ``cfg.test.seeds``, disjoint from the
   meta-training runs) trained for ``cfg.test.steps`` by the frozen learned
   MLR-SNet, by the untrained initialisation, and by constant / step /
   cosine schedules whose base rate is chosen on mean validation accuracy
   over ``cfg.test.lr_grid``, with the same optimizer, momentum, weight
   decay, budget and seeds.
3. Transfer (``cfg.transfer.enabled``): the same frozen controller on another
   task (CIFAR-10 (JPEG copy) / ResNet-8) against the tuned cosine schedule.

The results folder holds ``config.json``, ``meta_metrics.jsonl`` (one line
per meta-step), ``metrics.jsonl`` (every evaluation of every run),
``summary.md``, ``summary.json``, ``meta_training.png``, ``curves.png``
(LR, training loss and test accuracy of every method), ``transfer.png``,
``checkpoints/meta`` (resumable meta-training state) and
``checkpoints/controller`` (the frozen controller, for
:func:`frozen_optimizer` and ``lrmeta evaluate``).
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from lrmeta.controllers.mlr_snet import init_mlr_snet_params, mlr_snet_sgd
from lrmeta.experiments import results as res
from lrmeta.experiments.baselines import seed_keys, tune_schedule
from lrmeta.experiments.config import check_range
from lrmeta.experiments.train_job import build_task
from lrmeta.meta import (PES, AntitheticES, MetaCheckpointer, MetaTrainer,
                         TaskProblem, TruncatedBackprop,
                         default_meta_optimizer, load_controller, meta_train,
                         one_step_lookahead, save_controller, unrolled)
from lrmeta.tasks import Task
from lrmeta.train import applied_learning_rate, train_population

ESTIMATORS = ("truncated", "unrolled", "lookahead", "es", "pes")
SNAPSHOT_FRACTIONS = (1 / 3, 2 / 3)  # the paper's meta-test switch points


# -- the controller ----------------------------------------------------------

def controller_config(cfg, task: Task) -> dict:
  """Everything :func:`frozen_optimizer` needs to rebuild the controller."""
  return {"controller": "mlr_snet", "hidden": int(cfg.controller.hidden),
          "num_classes": int(task.dataset.num_classes),
          "gamma": float(cfg.controller.gamma) or None,
          "momentum": float(cfg.optimizer.momentum),
          "weight_decay": float(cfg.optimizer.weight_decay),
          "switch_fractions": (list(SNAPSHOT_FRACTIONS) if cfg.meta.snapshots
                               else []),
          "trained_on": task.name, "meta_estimator": cfg.meta.estimator,
          "horizon": int(cfg.meta.horizon)}


def build_optimizer(theta: Any | Sequence[Any], meta_config: dict,
                    num_steps: int, num_classes: int | None = None
                    ) -> optax.GradientTransformationExtraArgs:
  """``mlr_snet_sgd`` from a controller config; a sequence of snapshots is
  switched at ``switch_fractions`` of ``num_steps`` (gamma recomputed)."""
  fracs = meta_config.get("switch_fractions") or []
  switch = tuple(max(1, int(f * num_steps)) for f in fracs)
  if switch and len(set(switch)) < len(switch):
    raise ValueError(f"{num_steps} steps are too few to switch snapshots at "
                     f"{fracs}")
  return mlr_snet_sgd(
      list(theta) if switch else theta, meta_config["momentum"],
      weight_decay=meta_config["weight_decay"],
      num_classes=num_classes or meta_config["num_classes"],
      gamma=meta_config.get("gamma"), switch_steps=switch)


def frozen_optimizer(ckpt_dir: str, num_steps: int, *,
                     num_classes: int | None = None
                     ) -> optax.GradientTransformationExtraArgs:
  """A saved MLR-SNet, frozen (no meta-updates), as an Optax optimizer.

  Args:
    ckpt_dir: a ``checkpoints/controller`` folder written by :func:`run`.
    num_steps: the training budget of the task it is applied to (places the
      snapshot switches when the controller was saved with snapshots).
    num_classes: ``C`` of the new task for the rate bound gamma (default: the
      meta-training task's).

  Returns:
    SGD (momentum and weight decay as in meta-training) whose rate MLR-SNet
    sets at every step; it needs the minibatch loss as the ``value=`` extra
    argument, which :func:`lrmeta.train.train` passes.
  """
  theta, meta_config = load_controller(ckpt_dir)
  if meta_config.get("controller") != "mlr_snet":
    raise ValueError(f"{ckpt_dir} holds a {meta_config.get('controller')!r} "
                     "controller, not 'mlr_snet'")
  if meta_config.get("switch_fractions"):
    theta = [theta[f"s{i}"] for i in range(len(theta))]
  return build_optimizer(theta, meta_config, num_steps, num_classes)


# -- meta-training -----------------------------------------------------------

def make_estimator(cfg, problem: TaskProblem):
  m = cfg.meta
  if m.estimator == "truncated":
    return TruncatedBackprop(problem, horizon=m.horizon, window=m.window,
                             num_tasks=m.num_tasks)
  if m.estimator == "unrolled":
    return unrolled(problem, m.horizon, num_tasks=m.num_tasks)
  if m.estimator == "lookahead":
    return one_step_lookahead(problem, m.horizon, every=m.every,
                              num_tasks=m.num_tasks)
  if m.estimator == "es":
    return AntitheticES(problem, horizon=m.horizon, window=m.window,
                        num_tasks=m.num_tasks, num_pairs=m.es_pairs,
                        sigma=m.es_sigma)
  if m.estimator == "pes":
    return PES(problem, horizon=m.horizon, window=m.window,
               num_tasks=m.num_tasks, num_pairs=m.es_pairs,
               sigma=m.es_sigma)
  raise ValueError(f"config key 'meta.estimator' = {m.estimator!r} is not one "
                   f"of {ESTIMATORS}")


def num_meta_steps(cfg) -> int:
  """Outer updates: one per ``every`` inner steps for the look-ahead (one
  meta-training run, as in the paper), ``meta.meta_steps`` otherwise."""
  if cfg.meta.estimator == "lookahead":
    return cfg.meta.horizon // cfg.meta.every
  return cfg.meta.meta_steps


def meta_train_controller(cfg, task: Task, out: pathlib.Path,
                          quiet: bool = False) -> dict:
  """Meta-trains MLR-SNet from its default initialisation (resumable).

  Returns:
    ``{"theta0", "theta" (final), "snapshots" (list, may be empty),
    "trace" (per-meta-step metrics), "seconds"}``.
  """
  theta0 = init_mlr_snet_params(jax.random.key(cfg.seed),
                                cfg.controller.hidden)
  gamma = float(cfg.controller.gamma) or None
  momentum, wd = cfg.optimizer.momentum, cfg.optimizer.weight_decay
  num_classes = task.dataset.num_classes
  problem = TaskProblem(
      task, lambda th: mlr_snet_sgd(th, momentum, weight_decay=wd,
                                    num_classes=num_classes, gamma=gamma),
      meta_batch_size=cfg.meta.meta_batch_size)
  est = make_estimator(cfg, problem)
  trainer = MetaTrainer([est], default_meta_optimizer(cfg.meta.lr,
                                                      cfg.meta.weight_decay),
                        clip_norm=cfg.meta.clip_norm or None)
  total = num_meta_steps(cfg)
  ckpt = MetaCheckpointer(str(out / "checkpoints" / "meta"),
                          cfg.meta.save_every)
  start = ckpt.latest_step() or 0
  log_path = out / "meta_metrics.jsonl"
  if start == 0 and log_path.exists():
    log_path.unlink()
  meta_cfg = controller_config(cfg, task)
  marks = {max(1, int(f * total)): f"s{i}"
           for i, f in enumerate(SNAPSHOT_FRACTIONS)}
  snap_dir = out / "checkpoints" / "snapshots"
  bar = tqdm(total=total, initial=min(start, total), disable=quiet,
             desc=f"meta-train ({cfg.meta.estimator})", unit="meta-step",
             dynamic_ncols=True, leave=False)
  inner_lr = jax.jit(jax.vmap(lambda s: applied_learning_rate(s.opt_state)))

  def callback(state, metrics):
    step = int(state.step)
    inner = state.estimator_states[0].inner
    if cfg.meta.estimator == "pes":  # [P, 2N] runs: report the first
      inner = jax.tree.map(lambda x: x[:, 0], inner)
    row = {"meta_step": step,
           **{k: float(np.asarray(v)) for k, v in metrics.items()},
           "inner_lr_last": float(np.mean(inner_lr(inner)))}
    with open(log_path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if step in marks:
      save_controller(str(snap_dir / marks[step]), jax.device_get(state.theta),
                      {**meta_cfg, "switch_fractions": [],
                       "meta_step": step})
    bar.update(1)
    bar.set_postfix({"meta_loss": f"{row['meta_loss']:.4f}",
                     "lr": f"{row['inner_lr_last']:.3g}",
                     "diverged": int(row["diverged"])})

  t0 = time.perf_counter()
  state, _ = meta_train(trainer, theta0, jax.random.key(cfg.seed + 1), total,
                        checkpointer=ckpt, callback=callback)
  bar.close()
  ckpt.close()
  seconds = time.perf_counter() - t0
  # A run killed between checkpoints logged steps it then replays: keep the
  # last record of each meta-step.
  by_step = {}
  for line in log_path.read_text().splitlines():
    r = json.loads(line)
    by_step[r["meta_step"]] = r
  trace = [by_step[s] for s in sorted(by_step)]
  theta = jax.device_get(state.theta)
  snaps = []
  if cfg.meta.snapshots:
    snaps = [load_controller(str(snap_dir / f"s{i}"))[0]
             for i in range(len(SNAPSHOT_FRACTIONS))] + [theta]
  return {"theta0": theta0, "theta": theta, "snapshots": snaps,
          "trace": trace, "seconds": seconds}


# -- meta-test ---------------------------------------------------------------

def test_optimizer(task: Task, opt, steps: int, seeds, eval_every: int,
                   eval_examples: int, quiet: bool):
  """Trains ``len(seeds)`` fresh networks with one frozen optimizer."""
  _, hist = train_population(task, lambda _: opt, None, seed_keys(seeds),
                             steps,
                             eval_every=eval_every,
                             eval_examples=eval_examples or None,
                             progress=not quiet)
  return hist


def _row(method, lr, hist) -> dict:
  return {"method": method, "lr": lr,
          "test_acc": [float(x) for x in hist.final("test_acc")],
          "val_acc": [float(x) for x in hist.final("val_acc")],
          "val_loss": [float(x) for x in hist.final("val_loss")]}


def compare(task: Task, learned_opt, init_opt, steps: int, seeds, grid,
            schedules, eval_every: int, eval_examples: int, *, momentum: float,
            weight_decay: float, quiet: bool, tag: str):
  """Learned (and optionally untrained) MLR-SNet vs tuned schedules."""
  rows, curves, evals = [], {}, []
  named = [("MLR-SNet (meta-trained)", learned_opt)]
  if init_opt is not None:
    named.append(("MLR-SNet (untrained init)", init_opt))
  for name, opt in named:
    hist = test_optimizer(task, opt, steps, seeds, eval_every, eval_examples,
                          quiet)
    rows.append(_row(name, "learned", hist))
    curves[name] = res.curve(hist)
    evals += res.eval_records(name, seeds, hist)
    _log(quiet, f"  [{tag}] {name}: test acc "
         f"{res.mean_std(rows[-1]['test_acc'])}")
  for kind in schedules:
    lr, val_by_lr, hist = tune_schedule(
        task, kind, grid, steps, seeds, momentum=momentum,
        weight_decay=weight_decay, eval_every=eval_every,
        eval_examples=eval_examples, quiet=quiet)
    name = f"{kind} (tuned)"
    rows.append({**_row(name, lr, hist), "val_acc_by_lr": val_by_lr})
    curves[f"{kind} (lr {lr})"] = res.curve(hist)
    evals += res.eval_records(name, seeds, hist)
    _log(quiet, f"  [{tag}] {kind}: tuned lr {lr} (val acc by lr "
         f"{np.round(val_by_lr, 4).tolist()}), test acc "
         f"{res.mean_std(rows[-1]['test_acc'])}")
  return rows, curves, evals


def _log(quiet, msg):
  del quiet  # quiet hides progress bars only; the run still reports
  print(msg, flush=True)


def _pct(xs) -> str:
  a = 100 * np.asarray(xs, np.float64)
  return f"{a.mean():.2f} ± {a.std(ddof=1) if a.size > 1 else 0.0:.2f}"


def table(rows) -> str:
  header = ["method", "base lr", "test acc % (mean ± std)", "val acc %",
            "final val loss"]
  body = [[r["method"], r["lr"], _pct(r["test_acc"]), _pct(r["val_acc"]),
           f"{np.mean(r['val_loss']):.4f}"] for r in rows]
  return res.markdown_table(header, body)


def plot_meta(path: pathlib.Path, trace: list[dict], title: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  steps = [r["meta_step"] for r in trace]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  axes[0].plot(steps, [r["meta_loss"] for r in trace], marker=".")
  axes[0].set(title="meta-objective (meta-set loss)", xlabel="meta-step")
  axes[1].plot(steps, [r["inner_lr_last"] for r in trace], marker=".")
  axes[1].set(title="inner LR at the last inner step", xlabel="meta-step",
              yscale="log")
  for a in axes:
    a.grid(alpha=0.3)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _check(cfg) -> None:
  if cfg.meta.estimator not in ESTIMATORS:
    raise ValueError(f"config key 'meta.estimator' = {cfg.meta.estimator!r} "
                     f"is not one of {ESTIMATORS}")
  if cfg.controller.name != "mlr_snet":
    raise ValueError(f"config key 'controller.name' = {cfg.controller.name!r}"
                     ": meta-train supports 'mlr_snet'")
  for key, lo, hi in [("optimizer.momentum", 0.0, 0.999),
                      ("optimizer.weight_decay", 0.0, 1.0),
                      ("controller.hidden", 1, None),
                      ("controller.gamma", 0.0, None),
                      ("meta.horizon", 1, None), ("meta.meta_steps", 1, None),
                      ("meta.num_tasks", 1, None), ("meta.every", 1, None),
                      ("meta.window", 1, None), ("meta.es_pairs", 1, None),
                      ("meta.es_sigma", 1e-8, None),
                      ("meta.meta_batch_size", 1, None),
                      ("meta.lr", 1e-8, 10.0), ("meta.weight_decay", 0.0, 1.0),
                      ("meta.clip_norm", 0.0, None), ("meta.save_every", 1, None),
                      ("test.steps", 1, None), ("test.eval_every", 1, None),
                      ("transfer.steps", 1, None),
                      ("transfer.eval_every", 1, None)]:
    check_range(cfg, key, lo, hi)
  for key in ("test.seeds", "test.lr_grid", "test.schedules"):
    if not len(cfg[key.split(".")[0]][key.split(".")[1]]):
      raise ValueError(f"config key {key!r} is empty")
  if cfg.transfer.enabled and not (len(cfg.transfer.seeds) and
                                   len(cfg.transfer.lr_grid)):
    raise ValueError("config keys 'transfer.seeds' and 'transfer.lr_grid' "
                     "must be non-empty when transfer.enabled")


# -- the job -----------------------------------------------------------------

def _test_images(task: Task, stage) -> int:
  """How many test images a stage's accuracies are measured on."""
  n = int(task.dataset.test_y.shape[0])
  return min(n, stage.eval_examples) if stage.eval_examples else n


def run(cfg: ml_collections.ConfigDict, *, quiet: bool = False) -> dict:
  """Meta-trains, meta-tests and (optionally) transfers MLR-SNet.

  Writes the results folder described in the module docstring, prints the
  tables and, last, one JSON line with the headline numbers, which it also
  returns.
  """
  _check(cfg)
  t_start = time.perf_counter()
  task = build_task(cfg)
  out = res.run_dir(cfg.output_dir)
  res.write_config(out, cfg)
  meta_cfg = controller_config(cfg, task)
  _log(quiet, f"[1/3] meta-training MLR-SNet ({cfg.meta.estimator}) on "
       f"{task.dataset.name} / {cfg.task.model}, {task.dataset.num_train} "
       f"train images, horizon {cfg.meta.horizon}, {num_meta_steps(cfg)} "
       f"meta-steps")
  mt = meta_train_controller(cfg, task, out, quiet)
  ctrl_dir = out / "checkpoints" / "controller"
  if cfg.meta.snapshots:
    saved = {f"s{i}": th for i, th in enumerate(mt["snapshots"])}
    learned = mt["snapshots"]
  else:
    saved = learned = mt["theta"]
  save_controller(str(ctrl_dir), saved, meta_cfg)
  trace = mt["trace"]
  k = max(1, len(trace) // 4)
  meta_first = float(np.mean([r["meta_loss"] for r in trace[:k]]))
  meta_last = float(np.mean([r["meta_loss"] for r in trace[-k:]]))
  plot_meta(out / "meta_training.png", trace,
            f"{cfg.name}: meta-training ({cfg.meta.estimator})")
  _log(quiet, f"  meta-objective: first {k} meta-steps {meta_first:.4f} -> "
       f"last {k} {meta_last:.4f} ({mt['seconds']:.0f}s)")

  steps, seeds = cfg.test.steps, tuple(cfg.test.seeds)
  _log(quiet, f"[2/3] meta-test: {steps} steps, seeds {list(seeds)}")
  t0 = time.perf_counter()
  rows, curves, evals = compare(
      task, build_optimizer(learned, meta_cfg, steps),
      build_optimizer(mt["theta0"], {**meta_cfg, "switch_fractions": []},
                      steps),
      steps, seeds, cfg.test.lr_grid, tuple(cfg.test.schedules),
      cfg.test.eval_every, cfg.test.eval_examples,
      momentum=cfg.optimizer.momentum,
      weight_decay=cfg.optimizer.weight_decay, quiet=quiet, tag="meta-test")
  test_seconds = time.perf_counter() - t0
  res.plot_runs(out / "curves.png", curves,
                f"{task.dataset.name} / {cfg.task.model}: MLR-SNet vs tuned "
                f"schedules ({steps} steps, {len(seeds)} seeds)")
  learned_acc = float(np.mean(rows[0]["test_acc"]))
  base = [r for r in rows if r["lr"] != "learned"]
  best = max(base, key=lambda r: np.mean(r["test_acc"]))
  summary = {
      "results_dir": str(out),
      "meta_estimator": cfg.meta.estimator,
      "meta_steps": len(trace),
      "meta_objective_first": meta_first, "meta_objective_last": meta_last,
      "heldout_val_loss_untrained": float(np.mean(rows[1]["val_loss"])),
      "heldout_val_loss_learned": float(np.mean(rows[0]["val_loss"])),
      "test_acc": {r["method"]: float(np.mean(r["test_acc"])) for r in rows},
      "test_acc_std": {r["method"]: float(np.std(r["test_acc"], ddof=1))
                       if len(seeds) > 1 else 0.0 for r in rows},
      "tuned_lr": {r["method"]: r["lr"] for r in base},
      "best_baseline": best["method"],
      "learned_minus_best_baseline": learned_acc - float(
          np.mean(best["test_acc"])),
      "seconds": {"meta_train": mt["seconds"], "meta_test": test_seconds},
  }
  data_note = (f"{task.dataset.name} / {cfg.task.model}, "
               f"{task.dataset.num_train} training images, {steps} steps of "
               f"batch {task.batch_size}, SGD momentum "
               f"{cfg.optimizer.momentum}, weight decay "
               f"{cfg.optimizer.weight_decay}; baselines' base rate tuned on "
               f"mean validation accuracy ({task.dataset.val_y.shape[0]} held-out "
               f"images) over {list(cfg.test.lr_grid)}; seeds {list(seeds)} "
               f"(mean ± std, ddof 1); {_test_images(task, cfg.test)} test "
               f"images.")
  meta_note = (f"MLR-SNet meta-trained with `{cfg.meta.estimator}` "
               f"({len(trace)} meta-steps, horizon {cfg.meta.horizon}, "
               f"Adam lr {cfg.meta.lr}); meta-objective (meta-set loss) "
               f"{meta_first:.4f} over the first {k} meta-steps -> "
               f"{meta_last:.4f} over the last {k}."
               + (" Meta-test switches snapshots at 1/3 and 2/3 of the "
                  "budget." if cfg.meta.snapshots else ""))
  md = [f"# {cfg.name}", "", meta_note, "", "## Meta-test", "", data_note, "",
        table(rows)]
  all_rows = {"meta_test": rows}

  if cfg.transfer.enabled:
    ctask = build_task(ml_collections.ConfigDict(
        {"task": cfg.transfer.task.to_dict()}))
    ts, tseeds = cfg.transfer.steps, tuple(cfg.transfer.seeds)
    _log(quiet, f"[3/3] transfer: {ctask.dataset.name} / "
         f"{cfg.transfer.task.model}, {ctask.dataset.num_train} train images, "
         f"{ts} steps of batch {ctask.batch_size}, seeds {list(tseeds)}")
    t0 = time.perf_counter()
    trows, tcurves, tevals = compare(
        ctask, build_optimizer(learned, meta_cfg, ts,
                               ctask.dataset.num_classes),
        None, ts, tseeds, cfg.transfer.lr_grid, ("cosine",),
        cfg.transfer.eval_every, cfg.transfer.eval_examples,
        momentum=cfg.optimizer.momentum,
        weight_decay=cfg.optimizer.weight_decay, quiet=quiet, tag="transfer")
    evals += [{**e, "task": "transfer"} for e in tevals]
    res.plot_runs(out / "transfer.png", tcurves,
                  f"transfer: {ctask.dataset.name} / "
                  f"{cfg.transfer.task.model} ({ts} steps)")
    gap = float(np.mean(trows[0]["test_acc"]) - np.mean(trows[1]["test_acc"]))
    summary["transfer"] = {
        "task": f"{ctask.dataset.name} / {cfg.transfer.task.model}",
        "test_acc": {r["method"]: float(np.mean(r["test_acc"]))
                     for r in trows},
        "test_acc_std": {r["method"]: float(np.std(r["test_acc"], ddof=1))
                         if len(tseeds) > 1 else 0.0 for r in trows},
        "tuned_lr": trows[1]["lr"], "learned_minus_cosine": gap,
        "within_1_point": bool(gap >= -0.01),
        "seconds": time.perf_counter() - t0}
    md += ["", "## Transfer (frozen MLR-SNet)", "",
           f"{ctask.dataset.name} / {cfg.transfer.task.model}, "
           f"{ctask.dataset.num_train} training images, {ts} steps of batch "
           f"{ctask.batch_size}, same optimizer; cosine base rate tuned on "
           f"validation accuracy over {list(cfg.transfer.lr_grid)}; seeds "
           f"{list(tseeds)}; {_test_images(ctask, cfg.transfer)} test "
           f"images.", "", table(trows)]
    all_rows["transfer"] = trows

  summary["seconds"]["total"] = time.perf_counter() - t_start
  res.write_jsonl(out / "metrics.jsonl", evals)
  (out / "summary.md").write_text("\n".join(md))
  (out / "summary.json").write_text(json.dumps(
      {"summary": summary, "rows": all_rows}, indent=1, default=float))
  _log(quiet, "\n" + "\n".join(md) + f"\nresults written to {out}/")
  print(json.dumps(summary, default=float))
  return summary
