"""Throughput of the vmapped RL environment vs. plain training of one run.

Times ``env.step`` (one decision: ``steps_per_action`` inner steps plus the
policy's features and a validation minibatch) over ``--n-envs`` vmapped
environments, and the plain scanned ``run_steps`` of one run with SGD for the
same number of steps, on the Fashion-MNIST small CNN. The ratio is inner
steps per second across the batch over plain steps per second (above 1 means
the batch amortises the per-step overhead). Last line: JSON.

  python scripts/bench_rl_env.py --n-envs 8
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
from lrmeta.tasks import make_task
from lrmeta.train import init_state, run_steps


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--n-envs", type=int, default=8)
  p.add_argument("--steps-per-action", type=int, default=20)
  p.add_argument("--features", default="xu2019")
  p.add_argument("--reps", type=int, default=2)
  p.add_argument("--max-train", type=int, default=20000)
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
  print(json.dumps({"env_steps_per_s_over_plain": round(env_sps / plain_sps, 3),
                    "n_envs": args.n_envs, "env_steps_per_s": round(env_sps, 1),
                    "plain_steps_per_s": round(plain_sps, 1),
                    "steps_per_action": n, "backend": jax.default_backend()}))


if __name__ == "__main__":
  main()
