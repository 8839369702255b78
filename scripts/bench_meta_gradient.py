"""Cost and memory of one meta-gradient, per estimator.

Inner task: a small CNN on Fashion-MNIST (batch 32) trained by MLR-SNet
(hidden 50) on SGD with momentum. For each estimator the time of one
meta-gradient covering ``T`` inner steps is divided by the time of the plain
forward unroll of the same ``T`` steps (jitted ``run_steps``-style scan plus
the meta-loss, no gradient):

* unrolled: reverse-mode through all ``T`` steps (block rematerialisation);
* truncated: ``T / window`` calls of truncated backprop over windows of
  ``--window`` steps (a window's state is treated as constant);
* es: antithetic ES with ``--pairs`` pairs over the ``T`` steps (vmapped);
* pes: one PES truncation of ``T`` steps with ``--pairs`` pairs.

Peak memory is XLA's own accounting of the compiled program
(``compiled.memory_analysis()``: arguments + outputs + temporaries, minus
aliased buffers), for ``T`` in ``--mem-steps``; the program is compiled, not
run. ``peak_mem_mb`` is the unrolled (rematerialised) estimator;
``peak_mem_mb_by_estimator`` adds the others and backprop without
rematerialisation, the linear-in-T baseline.

  python scripts/bench_meta_gradient.py
  python scripts/bench_meta_gradient.py --steps 32 --mem-steps 64,256

The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax

from lrmeta.controllers.mlr_snet import init_mlr_snet_params, mlr_snet_sgd
from lrmeta.meta import TaskProblem, make_estimator, unrolled
from lrmeta.tasks import make_task


def _best_time(fn, args, reps):
  out = fn(*args)
  jax.block_until_ready(out)
  best = float("inf")
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return best


def _peak_mb(fn, args) -> float:
  m = jax.jit(fn).lower(*args).compile().memory_analysis()
  total = (m.argument_size_in_bytes + m.output_size_in_bytes
           + m.temp_size_in_bytes - m.alias_size_in_bytes)
  return round(total / 2 ** 20, 2)


def _estimators(problem, T, window, pairs, sigma):
  """Each estimator set up to cover ``T`` inner steps (PES: one truncation
  of a ``2T`` episode)."""
  es = dict(num_pairs=pairs, sigma=sigma)
  return {
      "unrolled": make_estimator("unrolled", problem, horizon=T),
      "truncated": make_estimator("truncated", problem, horizon=T,
                                  window=window),
      "es": make_estimator("es", problem, horizon=T, **es),
      "pes": make_estimator("pes", problem, horizon=2 * T, window=T, **es),
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=64, help="T for the timings")
  p.add_argument("--window", type=int, default=16)
  p.add_argument("--pairs", type=int, default=4)
  p.add_argument("--sigma", type=float, default=0.01)
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--mem-steps", default="64,256,1024")
  p.add_argument("--batch-size", type=int, default=32)
  args = p.parse_args()

  task = make_task("fashion_mnist", "small_cnn", batch_size=args.batch_size,
                   data_kwargs={"max_train": 10000, "num_val": 1000},
                   model_kwargs={"features": (8, 16), "hidden": 64})
  theta = init_mlr_snet_params(jax.random.key(0))
  problem = TaskProblem(task, lambda th: mlr_snet_sgd(th, momentum=0.9),
                        meta_batch_size=128)
  T = args.steps
  print(f"backend={jax.default_backend()} task={task.name} batch="
        f"{task.batch_size} controller=mlr_snet_sgd(hidden 50) T={T} "
        f"window={args.window} pairs={args.pairs} best of {args.reps}")

  def forward(th, s):
    s, _ = problem.unroll(th, s, T)
    return problem.meta_loss(th, s)

  s0 = problem.init(theta, jax.random.key(1))
  t_fwd = _best_time(jax.jit(forward), (theta, s0), args.reps)
  print(f"{'forward':<12}{t_fwd * 1e3:>10.1f} ms  (T={T} steps, "
        f"{t_fwd / T * 1e3:.2f} ms/step)")

  cost = {}
  for name, est in _estimators(problem, T, args.window, args.pairs,
                               args.sigma).items():
    state = est.init(theta, jax.random.key(2))
    fn = jax.jit(est.estimate)
    key = jax.random.key(3)
    t = _best_time(fn, (theta, state, key), args.reps)
    calls = T // est.window  # meta-gradient work per T inner steps
    cost[name] = round(t * calls / t_fwd, 2)
    print(f"{name:<12}{t * calls * 1e3:>10.1f} ms  ratio {cost[name]:.2f}"
          + (f"  ({calls} windows of {est.window})" if calls > 1 else ""))

  mem = {"unrolled": {}, "unrolled_no_remat": {}, "truncated": {}, "es": {},
         "pes": {}}
  print("peak memory (compiled memory_analysis, MB):")
  for t_mem in [int(x) for x in args.mem_steps.split(",") if x]:
    ests = _estimators(problem, t_mem, args.window, args.pairs, args.sigma)
    ests["unrolled_no_remat"] = unrolled(
        dataclasses.replace(problem, remat_block=0), t_mem)
    row = []
    for name in mem:
      est = ests[name]
      state = est.init(theta, jax.random.key(2))
      mem[name][t_mem] = _peak_mb(est.estimate,
                                  (theta, state, jax.random.key(3)))
      row.append(f"{name}={mem[name][t_mem]}")
    print(f"  T={t_mem:<5} " + " ".join(row), flush=True)

  print(json.dumps({
      "cost_over_forward": cost,
      "es_pairs": args.pairs,
      "steps": T,
      "truncated_window": args.window,
      "forward_ms": round(t_fwd * 1e3, 2),
      "peak_mem_mb": mem["unrolled"],
      "peak_mem_mb_by_estimator": mem,
      "peak_mem_source": "XLA compiled.memory_analysis() "
                         "(arguments + outputs + temporaries - aliased)",
      "backend": jax.default_backend(),
  }))


if __name__ == "__main__":
  main()
