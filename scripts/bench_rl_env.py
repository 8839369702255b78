"""Throughput of the vmapped RL environment vs. plain training of one run.

Times ``env.step`` (one decision: ``steps_per_action`` inner steps plus the
policy's features and a validation minibatch) over ``--n-envs`` vmapped
environments, and the plain scanned ``run_steps`` of one run with SGD for the
same number of steps, on the Fashion-MNIST small CNN. The ratio is inner
steps per second across the batch over plain steps per second (above 1 means
the batch amortises the per-step overhead). Last line: JSON.

With ``--family``, also times one ``step`` of ``--family-n-envs`` (64)
vmapped environments of one task-family instance shape (Fashion-MNIST pooled
to 14x14, MLP with one hidden layer of 32, batch 64, ``T`` = 200 split into
``--decisions`` (20) decisions, ``features="scale_free"``; built by
:func:`lrmeta.rl.family.family_envs`) against the plain reference: one run of
the same instance trained with SGD by ``run_steps`` jitted over the same
number of steps (one decision window, ``T // decisions`` steps) as one
compiled scan. The JSON gains ``family_n_envs`` and ``family_over_plain``:
environment-steps per second across the vmapped batch over the plain run's
steps per second; and, for reading it, the same ratio against a Python loop
of a jitted one-step ``run_steps`` (``family_over_plain_loop``) and against
``--family-n-envs`` vmapped plain runs (``family_over_vmapped_plain``, the
environment's own overhead). This MLP step is a few MFLOP, so on a CPU the
vmapped batch is bound by arithmetic, not per-step overhead.

  python scripts/bench_rl_env.py --n-envs 8
  python scripts/bench_rl_env.py --family
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import optax

from lrmeta.controllers.rl_policy import PolicyConfig
from lrmeta.experiments.timing import best_time
from lrmeta.rl.env import LREnv, LREnvConfig
from lrmeta.rl.family import family_envs
from lrmeta.tasks import make_task
from lrmeta.tasks.family import Instance
from lrmeta.train import init_state, run_steps

# The family instance shape the --family row times.
FAMILY_SHAPE = Instance("fashion_mnist", pool=14, hidden=(32,), batch_size=64,
                        num_steps=200)


def family_row(n_envs: int, decisions: int, reps: int) -> dict:
  """Steps per second of the vmapped family environments and of plain runs.

  Plain references, one run of the same instance with SGD over one decision
  window (``n`` steps): ``run_steps`` jitted over the ``n`` steps (the
  reference of ``family_over_plain``) and a Python loop of a jitted one-step
  ``run_steps`` (``family_over_plain_loop``). ``family_over_vmapped_plain``
  compares the environments with ``n_envs`` vmapped plain runs: what the
  features, decisions and validation minibatch cost on top of training.
  """
  pcfg = PolicyConfig(features="scale_free")
  env, = family_envs([FAMILY_SHAPE], LREnvConfig(policy=pcfg), decisions)
  task, n = env.task, env.policy_cfg.steps_per_action
  opt = optax.sgd(0.05, momentum=0.9)
  s0 = init_state(task, opt, jax.random.key(0))
  t_plain = best_time(jax.jit(lambda s: run_steps(task, opt, s, n)[0]), s0,
                      reps)
  one = jax.jit(lambda s: run_steps(task, opt, s, 1)[0])

  def loop(s):
    for _ in range(n):
      s = one(s)
    return s

  t_loop = best_time(loop, s0, reps)
  keys = jax.random.split(jax.random.key(1), n_envs)
  runs = jax.jit(jax.vmap(lambda k: init_state(task, opt, k)))(keys)
  t_vplain = best_time(
      jax.jit(jax.vmap(lambda s: run_steps(task, opt, s, n)[0])), runs, reps)
  states, _ = jax.jit(jax.vmap(env.reset))(keys)
  actions = jnp.full((n_envs,), 2, jnp.int32)  # factor 1.0
  step = jax.jit(lambda s: jax.vmap(env.step)(s, actions)[0])
  t_env = best_time(step, states, reps)
  sps = {"plain": n / t_plain, "loop": n / t_loop,
         "vplain": n_envs * n / t_vplain, "env": n_envs * n / t_env}
  print(f"family {task.name}: {n} steps/decision, features=scale_free")
  for name, label in (("plain", "plain one run (scan)"),
                      ("loop", "plain one run (loop)"),
                      ("vplain", f"plain x{n_envs} vmapped"),
                      ("env", f"env x{n_envs} vmapped")):
    print(f"{label:<22}: {sps[name]:9.1f} steps/s "
          f"({1e3 / sps[name]:.4f} ms per step)")
  return {"family_n_envs": n_envs,
          "family_over_plain": round(sps["env"] / sps["plain"], 3),
          "family_over_plain_loop": round(sps["env"] / sps["loop"], 3),
          "family_over_vmapped_plain": round(sps["env"] / sps["vplain"], 3),
          "family_env_steps_per_s": round(sps["env"], 1),
          "family_plain_steps_per_s": round(sps["plain"], 1),
          "family_steps_per_action": n}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--n-envs", type=int, default=8)
  p.add_argument("--steps-per-action", type=int, default=20)
  p.add_argument("--features", default="xu2019")
  p.add_argument("--reps", type=int, default=2)
  p.add_argument("--max-train", type=int, default=20000)
  p.add_argument("--family", action="store_true",
                 help="also time the task-family environments")
  p.add_argument("--family-n-envs", type=int, default=64)
  p.add_argument("--decisions", type=int, default=20)
  p.add_argument("--family-reps", type=int, default=5)
  args = p.parse_args()
  task = make_task("fashion_mnist", "small_cnn",
                   data_kwargs={"max_train": args.max_train})
  n = args.steps_per_action
  pcfg = PolicyConfig(steps_per_action=n, total_steps=n * 10,
                      features=args.features)
  env = LREnv(task, LREnvConfig(policy=pcfg))

  opt = optax.sgd(0.05, momentum=0.9)
  plain = jax.jit(lambda s: run_steps(task, opt, s, n)[0])
  t_plain = best_time(plain, init_state(task, opt, jax.random.key(0)),
                      args.reps)
  plain_sps = n / t_plain

  keys = jax.random.split(jax.random.key(1), args.n_envs)
  states, _ = jax.jit(jax.vmap(env.reset))(keys)
  actions = jnp.full((args.n_envs,), 2, jnp.int32)  # factor 1.0
  step = jax.jit(lambda s: jax.vmap(env.step)(s, actions)[0])
  t_env = best_time(step, states, args.reps)
  env_sps = args.n_envs * n / t_env
  print(f"backend={jax.default_backend()} task={task.name} batch="
        f"{task.batch_size} steps/decision={n} features={args.features}")
  print(f"plain one run : {plain_sps:8.1f} steps/s ({t_plain / n * 1e3:.1f} "
        "ms/step)")
  print(f"env x{args.n_envs:<3}     : {env_sps:8.1f} steps/s across the batch "
        f"({t_env / (n * args.n_envs) * 1e3:.1f} ms per env-step)")
  row = {"env_steps_per_s_over_plain": round(env_sps / plain_sps, 3),
         "n_envs": args.n_envs, "env_steps_per_s": round(env_sps, 1),
         "plain_steps_per_s": round(plain_sps, 1),
         "steps_per_action": n, "backend": jax.default_backend()}
  if args.family:
    row.update(family_row(args.family_n_envs, args.decisions,
                          args.family_reps))
  print(json.dumps(row))


if __name__ == "__main__":
  main()
