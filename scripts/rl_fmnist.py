"""Train an RL learning-rate policy (PPO) on Fashion-MNIST, compare it with
tuned hand-designed schedules, and transfer it unchanged to CIFAR-10 (JPEG copy).

  python scripts/rl_fmnist.py --config small   # a few minutes on CPU
  python scripts/rl_fmnist.py --config full --cifar

Steps: (1) PPO over ``num_envs`` vmapped training runs of the small CNN
(Xu, Dai, Kemp, Metz 2019 set-up: xu2019 features, discrete multiplicative
actions, validation-loss reward); (2) hand-designed schedules (constant, step
decay at 50%/75%, cosine) with SGD momentum 0.9, base LR tuned on the
validation split; (3) the best of each and the frozen policy (deterministic)
on ``eval_seeds`` fresh seeds, test accuracy mean and std; (4) optionally the
same on CIFAR-10 (JPEG copy) with the policy unchanged. Writes
``results.json`` and ``results.md`` under ``--out`` and says what it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import ml_collections
import numpy as np
import optax

from lrmeta.controllers.rl_policy import PolicyConfig, rl_lr_sgd
from lrmeta.rl import LREnv, LREnvConfig, PPOConfig, rl_signals, train_ppo
from lrmeta.tasks import make_task
from lrmeta.train import replicate_keys, stack_hparams, train_population


def get_config(name: str = "small") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.data_kwargs = {"max_train": 20000, "num_val": 5000}
  c.model_kwargs = {}
  c.batch_size = 128
  c.total_steps = 400
  c.steps_per_action = 20
  c.features = "xu2019"
  c.base_lr = 0.05
  c.num_envs = 8
  c.iterations = 30
  c.lr_grid = (0.01, 0.03, 0.1)
  c.eval_seeds = 3
  c.seed = 0
  c.eval_examples = 5000
  if name == "small":
    c.data_kwargs = {"max_train": 10000, "num_val": 2000}
    c.model_kwargs = {"features": (8, 16), "hidden": 64}
    c.batch_size = 64
    c.total_steps = 200
    c.num_envs = 4
    c.iterations = 4
    c.eval_seeds = 2
    c.eval_examples = 2000
  elif name != "full":
    raise ValueError(f"unknown config {name!r}")
  return c


SCHEDULES = {
    "constant": lambda lr, n: lr,
    "step": lambda lr, n: optax.piecewise_constant_schedule(
        lr, {int(0.5 * n): 0.1, int(0.75 * n): 0.1}),
    "cosine": lambda lr, n: optax.cosine_decay_schedule(lr, n),
}


def _run_schedules(task, c, seed, lrs, name):
  n = c.total_steps

  def make(h):
    return optax.sgd(SCHEDULES[name](h["lr"], n), momentum=0.9)
  _, hist = train_population(task, make, stack_hparams({"lr": lrs}),
                             replicate_keys(seed, len(lrs)), n,
                             eval_every=n, eval_examples=c.eval_examples,
                             progress=False)
  return hist


def tune_and_eval_schedules(task, c, eval_seed):
  rows = {}
  for name in SCHEDULES:
    hist = _run_schedules(task, c, c.seed, list(c.lr_grid), name)
    val = hist.final("val_acc")
    best = float(c.lr_grid[int(np.nanargmax(val))])
    hist = _run_schedules(task, c, eval_seed, [best] * c.eval_seeds, name)
    test = hist.final("test_acc")
    rows[name] = {"lr": best, "test_acc": test.tolist(),
                  "mean": float(test.mean()), "std": float(test.std())}
    print(f"  {name:<9} lr={best:<6} test acc {test.mean():.4f} "
          f"+- {test.std():.4f}")
  return rows


def eval_policy(task, c, actor, pcfg, eval_seed):
  opt = rl_lr_sgd(actor, c.base_lr, pcfg)
  _, hist = train_population(task, lambda h: opt, None,
                             replicate_keys(eval_seed, c.eval_seeds),
                             c.total_steps, eval_every=c.total_steps,
                             eval_examples=c.eval_examples,
                             signals=rl_signals(pcfg), progress=False)
  test = hist.final("test_acc")
  lr = hist.steps["lr"][0]
  print(f"  rl_policy base={c.base_lr} test acc {test.mean():.4f} +- "
        f"{test.std():.4f}; lr every {pcfg.steps_per_action} steps: "
        f"{np.round(lr[::pcfg.steps_per_action], 4).tolist()}")
  return {"test_acc": test.tolist(), "mean": float(test.mean()),
          "std": float(test.std()),
          "lr_schedule": lr[::pcfg.steps_per_action].tolist()}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="small")
  p.add_argument("--out", default="results/rl_fmnist")
  p.add_argument("--cifar", action="store_true")
  args = p.parse_args()
  c = get_config(args.config)
  os.makedirs(args.out, exist_ok=True)
  t0 = time.time()
  task = make_task("fashion_mnist", "small_cnn", batch_size=c.batch_size,
                   data_kwargs=c.data_kwargs, model_kwargs=c.model_kwargs)
  pcfg = PolicyConfig(steps_per_action=c.steps_per_action,
                      total_steps=c.total_steps, features=c.features)
  env = LREnv(task, LREnvConfig(policy=pcfg, base_lr=c.base_lr,
                                final_val_examples=1000))
  print(f"[1] PPO on {task.name}: {c.num_envs} envs x {c.iterations} "
        f"iterations, {c.total_steps} steps/episode")

  def log(it, m):
    print(f"  it {it:3d} return {m['episode_return']:+.3f} final val acc "
          f"{m['final_val_acc']:.4f} final lr {m['final_lr']:.4g} "
          f"entropy {m['entropy']:.3f} ({m['seconds']:.0f}s)", flush=True)
  state, history = train_ppo(
      env, PPOConfig(num_envs=c.num_envs, iterations=c.iterations,
                     seed=c.seed, checkpoint_dir=os.path.abspath(
                         os.path.join(args.out, "ckpt")),
                     minibatches=2), callback=log)
  actor = state.params["actor"]
  eval_seed = c.seed + 1000
  print("[2] tuned hand-designed schedules vs the frozen policy "
        f"({c.eval_seeds} seeds)")
  results = {"config": c.to_dict(), "ppo_history": history,
             "fmnist": tune_and_eval_schedules(task, c, eval_seed)}
  results["fmnist"]["rl_policy"] = eval_policy(task, c, actor, pcfg, eval_seed)
  if args.cifar:
    ctask = make_task("cifar10", "small_cnn", batch_size=c.batch_size,
                      data_kwargs=c.data_kwargs, model_kwargs=c.model_kwargs)
    print(f"[3] transfer to {ctask.dataset.name}")
    results["cifar10_jpeg"] = tune_and_eval_schedules(ctask, c, eval_seed)
    results["cifar10_jpeg"]["rl_policy"] = eval_policy(ctask, c, actor, pcfg,
                                                       eval_seed)
  results["wall_seconds"] = time.time() - t0
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1, default=float)
  lines = [f"# RL policy vs tuned schedules ({args.config} config)", ""]
  for ds in [k for k in ("fmnist", "cifar10_jpeg") if k in results]:
    lines += [f"## {ds}", "", "| schedule | base LR | test acc (mean +- std) |",
              "|---|---|---|"]
    for name, r in results[ds].items():
      lines.append(f"| {name} | {r.get('lr', c.base_lr)} | "
                   f"{r['mean']:.4f} +- {r['std']:.4f} |")
    lines.append("")
  with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write("\n".join(lines))
  print("\n".join(lines))
  print(f"wall time {results['wall_seconds']:.0f}s")


if __name__ == "__main__":
  main()
