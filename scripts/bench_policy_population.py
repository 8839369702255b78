"""A population of LR policies as one vmapped program vs one policy alone.

Trains ``--candidates`` policies of *different* families (packed into one
array layout, LR from a ``lax.switch`` on the policy id) as one vmapped
``lax.scan`` and compares the time per candidate-step with one candidate
trained alone (a jitted ``lax.scan`` of the same task and its own optax
schedule). The last line is a JSON object with ``candidates``,
``per_candidate_over_single`` and the timings.

  python scripts/bench_policy_population.py --candidates 16 --steps 10
"""

from __future__ import annotations

import argparse
import json

import jax

import lrmeta.schedules as S
from lrmeta.experiments.timing import best_time
from lrmeta.schedules.select import default_candidates, make_optimizer
from lrmeta.tasks import make_task
from lrmeta.train import init_population, init_state, run_steps


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--candidates", type=int, default=16)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--reps", type=int, default=2)
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--max_train", type=int, default=5000)
  args = p.parse_args()
  task = make_task("fashion_mnist", "small_cnn", batch_size=args.batch_size,
                   data_kwargs={"max_train": args.max_train})
  n = args.steps
  pool = [s for _, s in default_candidates(300)]
  specs = [pool[i % len(pool)] for i in range(args.candidates)]
  families = sorted({S.parse_spec(s).name for s in specs})

  # One candidate alone: its own optax schedule, no packing, no vmap.
  opt = S.sgd(S.schedule_from_spec(specs[7]), momentum=0.9)
  single = jax.jit(lambda s: run_steps(task, opt, s, n))
  t_single = best_time(single, init_state(task, opt, jax.random.key(0)),
                       args.reps, has_aux=True) / n

  packed = S.stack_packed([S.pack_spec(s, 1) for s in specs])
  mk = make_optimizer(0.9)
  keys = jax.random.split(jax.random.key(0), len(specs))
  pop = init_population(task, mk, packed, keys)
  fn = jax.jit(lambda s: jax.vmap(
      lambda h, si: run_steps(task, mk(h), si, n))(packed, s))
  t_pop = best_time(fn, pop, args.reps, has_aux=True) / n
  per_cand = t_pop / len(specs)
  print(f"backend={jax.default_backend()} task={task.name} "
        f"batch={args.batch_size} steps/segment={n} best of {args.reps}")
  print(f"{len(specs)} candidates from {len(families)} families: "
        f"{', '.join(families)}")
  print(f"single candidate         {t_single * 1e3:8.1f} ms/step")
  print(f"population (one program) {t_pop * 1e3:8.1f} ms/step  "
        f"= {per_cand * 1e3:.1f} ms per candidate-step")
  print(json.dumps({
      "candidates": len(specs),
      "families": len(families),
      "single_ms_per_step": round(t_single * 1e3, 2),
      "population_ms_per_step": round(t_pop * 1e3, 2),
      "per_candidate_ms_per_step": round(per_cand * 1e3, 2),
      "per_candidate_over_single": round(per_cand / t_single, 3),
      "backend": jax.default_backend(),
  }))


if __name__ == "__main__":
  main()
