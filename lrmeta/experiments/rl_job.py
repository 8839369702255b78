"""The `lrmeta rl-train` job: train an RL learning-rate policy, test it
against tuned hand-designed schedules, transfer it unchanged.

Stages (config: ``configs/rl_fmnist.py``):

1. Training. PPO (Xu, Dai, Kemp, Metz 2019 set-up) or the actor-critic of
   Xu, Qin et al. (2017) over a batch of training runs of the task, one
   episode per run; the trainer checkpoints to ``<out>/ckpt`` and resumes.
   The actor starts close to "keep the rate" (``env.keep_bias``), and each
   episode starts from a random rate around ``env.base_lr`` so that the
   policy has to learn to correct the rate as well as to schedule it.
2. Test on the training task. Every method's base rate (the schedules' peak
   rate, the policy's starting rate) is tuned on the validation split over
   one grid with ``eval.tune_seeds``; the tuned methods then run on
   ``eval.test_seeds``, disjoint from the training and tuning seeds. Same
   optimizer (SGD with momentum), budget and seeds for every method.
3. Transfer (optional): the same on another dataset/model with the frozen
   policy unchanged; its decision interval scales with the budget so it takes
   as many decisions as in training.

The results folder holds ``config.json``, ``training.jsonl`` (one line per
PPO iteration), ``metrics.jsonl`` (every run's evaluations), ``summary.md``,
``summary.json``, ``controller/`` (the frozen policy, for ``lrmeta
evaluate``), ``ckpt/`` and the figures ``training.png`` (reward, final
validation accuracy and learning rate per iteration), ``<task>_curves.png``
(LR curves, training loss, test accuracy of every method).

References:
  Xu, Dai, Kemp, Metz, "Learning an Adaptive Learning Rate Schedule",
  arXiv:1909.09712, 2019. Xu, Qin, Wang, Liu, "Reinforcement Learning for
  Learning Rate Control", arXiv:1705.11159, 2017.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lrmeta.controllers.rl_policy import (PolicyConfig, init_actor,
                                          keep_index, make_policy_net,
                                          observe, rl_lr_policy)
from lrmeta.experiments import results as res
from lrmeta.experiments import train_job
from lrmeta.experiments.config import apply_overrides, check_range, load_config
from lrmeta.experiments.optim import base_optimizer, simple_schedule
from lrmeta.meta.checkpoint import load_controller, save_controller
from lrmeta.rl import (ACConfig, LREnv, LREnvConfig, PPOConfig, ppo_init,
                       rl_signals, train_actor_critic, train_ppo)
from lrmeta.tasks import make_task
from lrmeta.train import init_state, run_steps
from lrmeta.train.state import loss_signal

CONTROLLER = "rl_policy"


# -- building blocks -----------------------------------------------------------


def build_task(cfg):
  """The training task (small CNN / MLP widths come from ``cfg.model``)."""
  model_kwargs = {}
  if cfg.task.model == "small_cnn":
    model_kwargs = {"features": tuple(cfg.model.features),
                    "hidden": int(cfg.model.hidden)}
  elif cfg.task.model == "mlp":
    model_kwargs = {"hidden": (int(cfg.model.hidden),)}
  return train_job.build_task(cfg, model_kwargs)


def policy_config(cfg) -> PolicyConfig:
  e = cfg.env
  check_range(cfg, "env.steps_per_action", 1)
  check_range(cfg, "env.total_steps", 1)
  return PolicyConfig(steps_per_action=e.steps_per_action,
                      total_steps=e.total_steps, features=e.features,
                      action=e.action, factors=tuple(e.factors),
                      max_log_factor=e.max_log_factor,
                      probe_size=e.probe_size, hidden=tuple(e.hidden))


def env_config(cfg) -> LREnvConfig:
  e = cfg.env
  check_range(cfg, "env.base_lr", 1e-8)
  check_range(cfg, "env.momentum", 0.0, 1.0)
  check_range(cfg, "env.init_log_lr_range", 0.0, 5.0)
  check_range(cfg, "env.final_weight", 0.0)
  return LREnvConfig(policy=policy_config(cfg), base_lr=e.base_lr,
                     momentum=e.momentum, val_batch_size=e.val_batch_size,
                     reward=e.reward, shaping=e.shaping,
                     final_weight=e.final_weight,
                     final_val_examples=e.final_val_examples,
                     init_log_lr_range=e.init_log_lr_range,
                     sequential=e.sequential)


def transfer_task(cfg):
  """The transfer stage's task and step budget (``cfg.transfer``)."""
  t = cfg.transfer
  check_range(cfg, "transfer.epochs", 1e-6)
  task = make_task(t.dataset, t.model, batch_size=t.batch_size,
                   data_kwargs={"num_val": t.num_val,
                                "max_train": t.max_train or None})
  return task, max(1, int(round(t.epochs * task.dataset.num_train /
                                t.batch_size)))


def task_family_note(cfg, unit: str) -> str:
  """``"; <unit> alternate between ..."`` when the policy trained on
  label-noise copies of its task (``env.train_label_noise``), else ``""``.
  Runs from before the option have no such key in their ``config.json``."""
  noise = tuple(cfg.env.get("train_label_noise", ()))
  if not noise:
    return ""
  return (f"; {unit} alternate between the clean task and its training "
          f"labels with symmetric noise {list(noise)}")


def training_envs(cfg, task) -> list[LREnv]:
  """The environments the policy trains on: ``task`` itself, then the same
  task with each symmetric label-noise rate of ``env.train_label_noise``
  (training labels only; the validation split, and so the reward, stays
  clean). The trainers cycle through them, one iteration each."""
  envs = [LREnv(task, env_config(cfg))]
  for rate in cfg.env.train_label_noise:
    if not 0.0 < rate < 1.0:
      raise ValueError(f"config key 'env.train_label_noise' must hold rates "
                       f"in (0, 1), got {tuple(cfg.env.train_label_noise)}")
    c = cfg.copy_and_resolve_references()
    c.task.label_noise = float(rate)
    envs.append(LREnv(build_task(c), env_config(cfg)))
  return envs


def initial_actor(pcfg: PolicyConfig, key: jax.Array, keep_bias: float):
  """Actor parameters whose initial policy favours keeping the rate: the
  logit of the factor closest to 1 gets ``keep_bias`` (discrete); the
  continuous actor's mean starts near 0 (factor 1) by construction."""
  actor = init_actor(pcfg, key)
  if pcfg.action == "discrete" and keep_bias:
    keep = keep_index(pcfg.factors)
    last = sorted(actor["params"], key=lambda n: int(n.split("_")[-1]))[-1]
    b = actor["params"][last]["bias"]
    actor["params"][last]["bias"] = b.at[keep].add(keep_bias)
  return actor


def scaled_policy_config(pcfg: PolicyConfig, num_steps: int) -> PolicyConfig:
  """The policy for a budget of ``num_steps``: same number of decisions."""
  n = max(1, num_steps // pcfg.num_decisions)
  return PolicyConfig(**{**pcfg.__dict__, "steps_per_action": n,
                         "total_steps": num_steps})


def _load(ckpt_dir: str):
  actor, meta = load_controller(ckpt_dir)
  if meta.get("controller") != CONTROLLER:
    raise ValueError(f"{ckpt_dir} holds a {meta.get('controller')!r} "
                     f"controller, not {CONTROLLER!r}")
  p = meta["policy"]
  pcfg = PolicyConfig(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in p.items()})
  return actor, pcfg, meta


def frozen_optimizer(ckpt_dir: str, num_steps: int, *,
                     learning_rate: float | None = None
                     ) -> optax.GradientTransformationExtraArgs:
  """The saved policy, frozen (greedy), on SGD with momentum.

  Its decision interval scales to ``num_steps`` (same number of decisions as
  in training). Pass the signals of :func:`frozen_signals` to the training
  loop so the policy sees validation losses; without them the
  validation features stay at 0.

  Args:
    ckpt_dir: a ``controller/`` folder written by :func:`run`.
    num_steps: the budget of the run it will control.
    learning_rate: the starting (base) rate; default the one tuned in
      training's test stage (or ``env.base_lr``).
  """
  return _frozen(_load(ckpt_dir), num_steps, learning_rate)[1]


def frozen_signals(ckpt_dir: str, num_steps: int):
  """The training-loop signals the frozen policy expects."""
  return _frozen(_load(ckpt_dir), num_steps)[2]


def _frozen(loaded, num_steps: int, learning_rate: float | None = None):
  """``(policy config, optimizer, signals)`` of a loaded controller for a
  budget of ``num_steps`` (see :func:`frozen_optimizer`)."""
  actor, pcfg, meta = loaded
  pcfg = scaled_policy_config(pcfg, num_steps)
  lr = meta["base_lr"] if learning_rate is None else learning_rate
  base = optax.inject_hyperparams(optax.sgd)(learning_rate=lr,
                                             momentum=meta["momentum"])
  return (pcfg, optax.chain(base, rl_lr_policy(actor, pcfg)),
          rl_signals(pcfg, meta["val_batch_size"]))


def policy_trace(ckpt_dir: str, task, num_steps: int, key: jax.Array, *,
                 learning_rate: float | None = None) -> dict[str, np.ndarray]:
  """What the frozen policy sees and does on ``task``, decision by decision.

  Trains one run of ``num_steps`` under :func:`frozen_optimizer` and, after
  each decision window, records the observation (``obs``, ``[decisions,
  features]``, names in ``rl_policy.FEATURE_NAMES``), the actor's output
  (``probs`` over the factors for a discrete policy, ``mean`` log-factor for
  a continuous one) and the rate applied during the window (``lr``). Used to
  see why a policy behaves differently on a transfer task.
  """
  loaded = _load(ckpt_dir)
  actor = loaded[0]
  pcfg, opt, signals = _frozen(loaded, num_steps, learning_rate)
  net = make_policy_net(pcfg)
  n = pcfg.steps_per_action

  @jax.jit
  def window(state):
    state, m = run_steps(task, opt, state, n, signals=signals)
    obs = observe(pcfg, state.opt_state[1], state.params)
    out = net.apply(actor, obs)
    act = (jax.nn.softmax(out) if pcfg.action == "discrete"
           else out[0][..., 0])
    return state, obs, act, m["lr"].mean()

  state = init_state(task, opt, key)
  rows = []
  for _ in range(num_steps // n):
    state, obs, act, lr = window(state)
    rows.append(jax.device_get((obs, act, lr)))
  obs, act, lr = (np.stack(r) for r in zip(*rows))
  return {"obs": obs, "probs" if pcfg.action == "discrete" else "mean": act,
          "lr": lr, "factors": np.asarray(pcfg.factors)}


# -- evaluation -----------------------------------------------------------------


def _make_runner(task, make_opt: Callable[[jax.Array], Any], num_steps: int,
                 num_evals: int, eval_examples: int | None, signals,
                 splits: tuple[str, ...] = ("val", "test")):
  """A jitted ``(key, lr) -> curves`` for one method (one compile; runs are
  called one after another, which on XLA:CPU beats vmapping conv nets).

  ``splits`` are evaluated ``num_evals`` times along the run; the tuning runs
  of :func:`compare` ask for the validation split once, at the end (on
  CIFAR-10 / ResNet-8 the test-split evaluations were two thirds of a
  transfer stage's time)."""
  num_evals = max(1, min(num_evals, num_steps))
  bounds = np.linspace(0, num_steps, num_evals + 1).round().astype(int)
  chunks = [int(b - a) for a, b in zip(bounds[:-1], bounds[1:])]

  @jax.jit
  def one(key, lr):
    opt = make_opt(lr)
    st = init_state(task, opt, key)
    lrs, losses = [], []
    ev = {f"{sp}_{m}": [] for sp in splits for m in ("acc", "loss")}
    for c in chunks:
      st, m = run_steps(task, opt, st, c, signals=signals)
      lrs.append(m["lr"])
      losses.append(m["train_loss"])
      for split in splits:
        e = task.evaluate(st.params, st.model_state, split, eval_examples)
        ev[f"{split}_acc"].append(e["accuracy"])
        ev[f"{split}_loss"].append(e["loss"])
    out = {"lr": jnp.concatenate(lrs), "train_loss": jnp.concatenate(losses)}
    out.update({k: jnp.stack(v) for k, v in ev.items()})
    return out

  return one, bounds[1:]


def _runs(runner, seeds, lrs):
  outs = [jax.device_get(runner(jax.random.key(int(s)), jnp.float32(lr)))
          for s, lr in zip(seeds, lrs)]
  return {k: np.stack([o[k] for o in outs]) for k in outs[0]}


def compare(task, methods: dict[str, tuple[Callable, Any]], *, num_steps: int,
            lr_grid, tune_seeds, test_seeds, num_evals: int,
            eval_examples: int | None, log: Callable[[str], None]) -> dict:
  """Tunes each method's rate on validation, then tests it on fresh seeds.

  Args:
    methods: ``name -> (make_opt(lr), signals)``.

  Returns:
    ``name -> {"lr", "grid_val_acc", "test": curves [seeds, ...],
    "eval_steps"}``.
  """
  out = {}
  for name, (make_opt, signals) in methods.items():
    t0 = time.perf_counter()
    runner, eval_steps = _make_runner(task, make_opt, num_steps, num_evals,
                                      eval_examples, signals)
    tuner, _ = _make_runner(task, make_opt, num_steps, 1, eval_examples,
                            signals, splits=("val",))
    grid_val = []
    for lr in lr_grid:
      r = _runs(tuner, tune_seeds, [lr] * len(tune_seeds))
      grid_val.append(float(r["val_acc"][:, -1].mean()))
    best = float(lr_grid[int(np.nanargmax(grid_val))])
    test = _runs(runner, test_seeds, [best] * len(test_seeds))
    out[name] = {"lr": best, "grid_val_acc": grid_val, "test": test,
                 "eval_steps": eval_steps}
    acc = test["test_acc"][:, -1]
    log(f"  {name:<10} tuned lr {best:<6g} (val acc over grid "
        f"{np.round(grid_val, 4).tolist()}) -> test acc {res.mean_std(acc)} "
        f"[{time.perf_counter() - t0:.0f}s]")
  return out


def _methods(schedules, actor, pcfg, num_steps, momentum, val_batch_size,
             deterministic):
  methods = {}
  for name in schedules:
    methods[name] = (
        lambda lr, name=name: base_optimizer(
            "sgd", simple_schedule(name, lr, num_steps), momentum=momentum),
        loss_signal)
  scaled = scaled_policy_config(pcfg, num_steps)
  methods["rl_policy"] = (
      lambda lr: optax.chain(
          optax.inject_hyperparams(optax.sgd)(learning_rate=lr,
                                              momentum=momentum),
          rl_lr_policy(actor, scaled, deterministic=deterministic)),
      rl_signals(scaled, val_batch_size))
  return methods


def _rows(results: dict) -> list[list[Any]]:
  rows = []
  for name, r in results.items():
    t = r["test"]
    rows.append([name, f"{r['lr']:g}", res.mean_std(t["test_acc"][:, -1]),
                 res.mean_std(t["test_loss"][:, -1]),
                 res.mean_std(t["val_acc"][:, -1])])
  return rows


def _best_schedule(results: dict) -> tuple[str, float]:
  scores = {n: float(r["test"]["test_acc"][:, -1].mean())
            for n, r in results.items() if n != "rl_policy"}
  best = max(scores, key=scores.get)
  return best, scores[best]


def _plot_training(path, history: list[dict], title: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  h = {k: np.asarray([m.get(k, np.nan) for m in history]) for k in
       ("episode_return", "final_val_acc", "final_lr", "env_index")}
  h["env_index"] = np.nan_to_num(h["env_index"]).astype(int)
  x = np.arange(1, len(history) + 1)
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for ax, (k, lab) in zip(axes, [("episode_return", "mean episode return"),
                                 ("final_val_acc", "final val accuracy"),
                                 ("final_lr", "final learning rate")]):
    for e in np.unique(h["env_index"]):
      sel = h["env_index"] == e
      ax.plot(x[sel], h[k][sel], marker=".",
              label=f"training task {e}" + (" (clean)" if e == 0 else ""))
    ax.set(title=lab, xlabel="iteration")
    ax.grid(alpha=0.3)
  if len(np.unique(h["env_index"])) > 1:
    axes[0].legend(fontsize=8)
  axes[2].set_yscale("log")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _curves(results: dict) -> dict:
  return {n: {"lr": r["test"]["lr"], "train_loss": r["test"]["train_loss"],
              "eval_steps": r["eval_steps"], "test_acc": r["test"]["test_acc"]}
          for n, r in results.items()}


def _metrics_rows(tag: str, results: dict, seeds) -> list[dict]:
  rows = []
  for name, r in results.items():
    t = r["test"]
    for i, s in enumerate(seeds):
      for j, step in enumerate(r["eval_steps"]):
        rows.append({"task": tag, "method": name, "seed": int(s),
                     "lr": r["lr"], "step": int(step),
                     **{k: float(t[k][i, j]) for k in
                        ("val_acc", "val_loss", "test_acc", "test_loss")}})
  return rows


# -- the job ---------------------------------------------------------------------


def _progress(total: int, quiet: bool, desc: str):
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(total=total, desc=desc, disable=quiet, dynamic_ncols=True)


def train_policy(cfg, envs: list[LREnv], out, *, quiet: bool = False):
  """Stage 1: trains the actor on ``envs`` (cycled, one iteration each);
  returns ``(actor, history)``."""
  env = envs[0]
  pcfg = env.policy_cfg
  ckpt = os.path.abspath(os.path.join(out, "ckpt"))
  if cfg.algo == "ppo":
    p = cfg.ppo
    check_range(cfg, "ppo.num_envs", 1)
    check_range(cfg, "ppo.iterations", 1)
    pc = PPOConfig(num_envs=p.num_envs, iterations=p.iterations,
                   epochs=p.epochs, minibatches=p.minibatches,
                   gamma=p.gamma, gae_lambda=p.gae_lambda,
                   clip_eps=p.clip_eps, ent_coef=p.ent_coef,
                   learning_rate=p.learning_rate, seed=cfg.seed,
                   checkpoint_dir=ckpt, checkpoint_every=p.checkpoint_every)
    total, unit = p.iterations, "iterations"
    actor0 = initial_actor(pcfg, jax.random.fold_in(jax.random.key(cfg.seed),
                                                    1), cfg.env.keep_bias)
    state = ppo_init(env, pc, actor_params=actor0)
  elif cfg.algo == "actor_critic":
    a = cfg.actor_critic
    check_range(cfg, "actor_critic.episodes", 1)
    pc = ACConfig(num_envs=a.num_envs, episodes=a.episodes, gamma=a.gamma,
                  actor_lr=a.actor_lr, critic_lr=a.critic_lr,
                  noise_std=a.noise_std, seed=cfg.seed, checkpoint_dir=ckpt,
                  checkpoint_every=2)
    total, unit, state = a.episodes, "episode batches", None
  else:
    raise ValueError(f"config key 'algo' must be 'ppo' or 'actor_critic', "
                     f"got {cfg.algo!r}")
  bar = _progress(total, quiet, f"{cfg.algo} ({unit})")

  def callback(i, m):
    bar.n = i
    post = {"return": f"{m['episode_return']:+.3f}"}
    if "final_val_acc" in m:
      post["val_acc"] = f"{m['final_val_acc']:.4f}"
      post["final_lr"] = f"{m['final_lr']:.3g}"
    bar.set_postfix(post, refresh=False)
    bar.refresh()

  if cfg.algo == "ppo":
    state, history = train_ppo(envs, pc, state=state, callback=callback)
  else:
    state, history = train_actor_critic(envs, pc, callback=callback)
  bar.close()
  return state.params["actor"], history


def run(cfg, *, quiet: bool = False) -> dict:
  """Runs the three stages; writes the results folder; returns the summary."""
  t_start = time.perf_counter()
  log = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
  out = res.run_dir(cfg.output_dir)
  res.write_config(out, cfg)
  task = build_task(cfg)
  envs = training_envs(cfg, task)
  pcfg = envs[0].policy_cfg
  steps = pcfg.total_steps
  noise = tuple(cfg.env.train_label_noise)
  log(f"[1/3] {cfg.algo} on {task.name}"
      + (f" (and with label noise {noise}, cycled)" if noise else "")
      + f": {steps} steps/episode (batch {task.batch_size}, "
      f"{task.dataset.num_train} training images), a decision every "
      f"{pcfg.steps_per_action} steps")
  actor, history = train_policy(cfg, envs, out, quiet=quiet)
  res.write_jsonl(out / "training.jsonl", history)
  _plot_training(out / "training.png", history, f"{cfg.name}: {cfg.algo}")

  log(f"[2/3] test on {task.dataset.name}: tuned base rates over "
      f"{tuple(cfg.eval.lr_grid)} (tune seeds {tuple(cfg.eval.tune_seeds)}), "
      f"test seeds {tuple(cfg.eval.test_seeds)}")
  methods = _methods(cfg.eval.schedules, actor, pcfg, steps, cfg.env.momentum,
                     cfg.env.val_batch_size, cfg.eval.deterministic)
  fm = compare(task, methods, num_steps=steps, lr_grid=tuple(cfg.eval.lr_grid),
               tune_seeds=cfg.eval.tune_seeds, test_seeds=cfg.eval.test_seeds,
               num_evals=cfg.eval.num_evals,
               eval_examples=cfg.eval.eval_examples or None, log=log)
  meta = {"controller": CONTROLLER, "algo": cfg.algo,
          "policy": {k: list(v) if isinstance(v, tuple) else v
                     for k, v in pcfg.__dict__.items()},
          "base_lr": fm["rl_policy"]["lr"], "momentum": cfg.env.momentum,
          "val_batch_size": cfg.env.val_batch_size,
          "trained_on": task.name, "train_label_noise": list(noise),
          "train_steps": steps,
          "iterations": len(history)}
  save_controller(str(out / "controller"), actor, meta)

  metrics = _metrics_rows(task.name, fm, cfg.eval.test_seeds)
  clean = [m for m in history if m.get("env_index", 0) == 0]
  best, best_acc = _best_schedule(fm)
  rl_acc = fm["rl_policy"]["test"]["test_acc"][:, -1]
  summary = {"results_dir": str(out), "algo": cfg.algo, "steps": steps,
             "iterations": len(history),
             # returns on the clean task (env 0), first and last iteration
             "first_return": clean[0]["episode_return"],
             "last_return": clean[-1]["episode_return"],
             "test_acc": {n: res.mean_std(r["test"]["test_acc"][:, -1])
                          for n, r in fm.items()},
             "tuned_lr": {n: r["lr"] for n, r in fm.items()},
             "best_schedule": best,
             "rl_minus_best_schedule": float(rl_acc.mean() - best_acc)}
  res.plot_runs(out / "fmnist_curves.png", _curves(fm),
                f"{task.name}: tuned schedules vs RL policy")
  header = ["method", "tuned base lr", "test acc", "test loss", "val acc"]
  note = (f"{task.dataset.name}, {cfg.task.model} (widths "
          f"{tuple(cfg.model.features)}/{cfg.model.hidden}), "
          f"{task.dataset.num_train} training images, {steps} steps of batch "
          f"{task.batch_size}, SGD momentum {cfg.env.momentum}; base rates "
          f"tuned on validation over {tuple(cfg.eval.lr_grid)} with seeds "
          f"{tuple(cfg.eval.tune_seeds)}; test seeds "
          f"{tuple(cfg.eval.test_seeds)} (mean ± std); policy trained by "
          f"{cfg.algo} for {len(history)} iterations on seed {cfg.seed}"
          f"{task_family_note(cfg, 'iterations')}.")
  md = [f"# {cfg.name}", "", note, "",
        res.markdown_table(header, _rows(fm))]

  if cfg.transfer.enabled:
    t = cfg.transfer
    ttask, tsteps = transfer_task(cfg)
    log(f"[3/3] transfer to {ttask.dataset.name} / {t.model}: {tsteps} steps "
        f"of batch {t.batch_size} ({t.epochs} epochs of "
        f"{ttask.dataset.num_train} images), policy unchanged")
    tm = _methods(t.schedules, actor, pcfg, tsteps, cfg.env.momentum,
                  cfg.env.val_batch_size, cfg.eval.deterministic)
    tr = compare(ttask, tm, num_steps=tsteps, lr_grid=tuple(t.lr_grid),
                 tune_seeds=t.tune_seeds, test_seeds=t.test_seeds,
                 num_evals=cfg.eval.num_evals,
                 eval_examples=t.eval_examples or None, log=log)
    metrics += _metrics_rows(ttask.name, tr, t.test_seeds)
    res.plot_runs(out / "transfer_curves.png", _curves(tr),
                  f"transfer to {ttask.name}")
    tb, tb_acc = _best_schedule(tr)
    summary["transfer"] = {
        "task": ttask.name, "steps": tsteps,
        "test_acc": {n: res.mean_std(r["test"]["test_acc"][:, -1])
                     for n, r in tr.items()},
        "tuned_lr": {n: r["lr"] for n, r in tr.items()},
        "rl_minus_" + tb: float(
            tr["rl_policy"]["test"]["test_acc"][:, -1].mean() - tb_acc)}
    md += [f"## Transfer: {ttask.dataset.name}, {t.model}", "",
           f"{ttask.dataset.num_train} training images, {tsteps} steps of "
           f"batch {t.batch_size} ({t.epochs} epochs), rates tuned over "
           f"{tuple(t.lr_grid)}, test seeds {tuple(t.test_seeds)}; the "
           f"policy unchanged (one decision every "
           f"{scaled_policy_config(pcfg, tsteps).steps_per_action} steps).",
           "", res.markdown_table(header, _rows(tr))]
  res.write_jsonl(out / "metrics.jsonl", metrics)
  summary["wall_s"] = round(time.perf_counter() - t_start, 1)
  md += [f"Wall time {summary['wall_s']:.0f} s, backend "
         f"{jax.default_backend()}.", ""]
  (out / "summary.md").write_text("\n".join(md))
  (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
  log("\n" + "\n".join(md) + f"\nresults written to {out}/")
  print(json.dumps(summary))
  return summary


def table_script(description: str, config: str, variants: tuple[str, str],
                 table: Callable[[Any, dict], str], argv=None) -> None:
  """The ``main`` of the RL paper-table scripts: ``--small`` picks the
  second of ``variants`` (full, small) of ``config``; ``--config.*``
  overrides pass through; ``--table-only`` rebuilds ``table.md`` from the
  finished run's resolved config and summary instead of running the job.
  Writes ``table.md`` in the results folder and prints it and the summary.
  """
  p = argparse.ArgumentParser(description=description)
  p.add_argument("--small", action="store_true",
                 help=f"CPU variant ({config}:{variants[1]})")
  p.add_argument("--table-only", action="store_true",
                 help="rebuild table.md from an existing results folder")
  p.add_argument("--quiet", action="store_true")
  args, overrides = p.parse_known_args(argv)
  cfg = apply_overrides(
      load_config(f"{config}:{variants[int(args.small)]}"), overrides)
  out = pathlib.Path(cfg.output_dir)
  if args.table_only:
    # Describe the run as it was configured, not as the config reads now.
    cfg = ml_collections.ConfigDict(
        json.loads((out / "config.json").read_text()))
    summary = json.loads((out / "summary.json").read_text())
  else:
    summary = run(cfg, quiet=args.quiet)
  md = table(cfg, summary)
  (out / "table.md").write_text(md)
  print(md)
  print(json.dumps(summary))


def transfer_table(cfg, summary: dict, policy_name: str = "RL policy"
                   ) -> list[str]:
  """Markdown lines for the transfer stage of a finished run (none if the
  run had no transfer stage); shared by the paper-table scripts."""
  if "transfer" not in summary:
    return []
  t = summary["transfer"]
  lines = [f"## Transfer, policy unchanged: {t['task']} (CIFAR-10 is the "
           f"JPEG copy), {t['steps']} steps ({cfg.transfer.epochs} epochs of "
           f"{cfg.transfer.max_train or 'all'} images, batch "
           f"{cfg.transfer.batch_size}); every method's base rate tuned on "
           f"validation over {list(cfg.transfer.lr_grid)}", "",
           "| method | tuned base lr | test acc |", "|---|---|---|"]
  for m, acc in t["test_acc"].items():
    name = policy_name if m == "rl_policy" else m
    lines.append(f"| {name} | {t['tuned_lr'][m]} | {acc} |")
  diff = [k for k in t if k.startswith("rl_minus_")][0]
  lines += ["", f"{policy_name} minus {diff[len('rl_minus_'):]}: "
            f"{100 * t[diff]:+.2f} points.", ""]
  return lines
