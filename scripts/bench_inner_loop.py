"""Inner-loop speed: plain jitted steps vs scanned chunks vs vmapped populations.

Prints a table and, as its last line, a JSON object with the figures:
``backend``, ``plain_ms_per_step``, ``scan_over_plain`` and
``vmap_per_task_over_plain`` (keyed by K), plus examples/s and FLOP/s.

  python scripts/bench_inner_loop.py                 # Fashion-MNIST small CNN
  python scripts/bench_inner_loop.py --conv_impl xla # XLA's native convolution
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
import optax

from lrmeta.experiments.timing import best_time
from lrmeta.models import resolve_conv_impl
from lrmeta.tasks import make_task
from lrmeta.train import init_population, init_state, run_steps, train_step


def _flops(fn, state):
  try:
    cost = jax.jit(fn).lower(state).compile().cost_analysis()
    if isinstance(cost, list):
      cost = cost[0]
    return float(cost.get("flops", float("nan")))
  except Exception:  # pylint: disable=broad-except
    return float("nan")


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch_size", type=int, default=128)
  p.add_argument("--steps", type=int, default=20,
                 help="steps per timed segment")
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--ks", default="1,4,8")
  p.add_argument("--model", default="small_cnn")
  p.add_argument("--conv_impl", default="auto")
  p.add_argument("--unroll", type=int, default=1)
  args = p.parse_args()

  impl = resolve_conv_impl(args.conv_impl)
  task = make_task("fashion_mnist", args.model, batch_size=args.batch_size,
                   model_kwargs={"conv_impl": impl},
                   data_kwargs={"max_train": 20000})
  opt = optax.sgd(0.05, momentum=0.9)
  n = args.steps

  # 1. Plain: a Python loop over a jitted step (what users write with optax).
  step = jax.jit(lambda s: train_step(task, opt, s))

  def plain(s):
    for _ in range(n):
      s, m = step(s)
    return s, m

  s0 = init_state(task, opt, jax.random.key(0))
  t_plain = best_time(plain, s0, args.reps, has_aux=True) / n
  step_flops = _flops(lambda s: train_step(task, opt, s)[0], s0)

  # 2. Scanned chunk of n steps.
  scan = jax.jit(lambda s: run_steps(task, opt, s, n, unroll=args.unroll))
  t_scan = best_time(scan, s0, args.reps, has_aux=True) / n

  # 3. Vmapped populations.
  vmap_ms = {}
  for k in [int(x) for x in args.ks.split(",")]:
    keys = jax.random.split(jax.random.key(1), k)
    lrs = {"lr": np.full((k,), 0.05, np.float32)}
    mk = lambda h: optax.sgd(h["lr"], momentum=0.9)
    pop = init_population(task, mk, lrs, keys)
    fn = jax.jit(lambda s, mk=mk, lrs=lrs: jax.vmap(
        lambda h, si: run_steps(task, mk(h), si, n, unroll=args.unroll))(
            lrs, s))
    vmap_ms[k] = best_time(fn, pop, args.reps, has_aux=True) / n / k * 1e3

  plain_ms, scan_ms = t_plain * 1e3, t_scan * 1e3
  ex_s = args.batch_size / t_plain
  print(f"backend={jax.default_backend()} devices={jax.device_count()} "
        f"model={args.model} conv_impl={impl} batch={args.batch_size} "
        f"steps/segment={n} best of {args.reps}")
  print(f"{'loop':<22}{'ms/step':>10}{'ratio':>8}{'examples/s':>12}"
        f"{'GFLOP/s':>10}")
  rows = [("plain jitted step", plain_ms), ("lax.scan", scan_ms)] + [
      (f"vmap K={k} (per task)", v) for k, v in vmap_ms.items()]
  for name, ms in rows:
    print(f"{name:<22}{ms:>10.2f}{ms / plain_ms:>8.2f}"
          f"{args.batch_size / ms * 1e3:>12.0f}"
          f"{step_flops / ms / 1e6:>10.1f}")
  result = {
      "backend": jax.default_backend(),
      "model": args.model,
      "conv_impl": impl,
      "batch_size": args.batch_size,
      "plain_ms_per_step": round(plain_ms, 3),
      "scan_ms_per_step": round(scan_ms, 3),
      "scan_over_plain": round(scan_ms / plain_ms, 3),
      "vmap_per_task_ms": {str(k): round(v, 3) for k, v in vmap_ms.items()},
      "vmap_per_task_over_plain": {str(k): round(v / plain_ms, 3)
                                   for k, v in vmap_ms.items()},
      "examples_per_s_plain": round(ex_s, 1),
      "flops_per_step": step_flops,
      "gflops_per_s_plain": round(step_flops / t_plain / 1e9, 2),
  }
  print(json.dumps(result))


if __name__ == "__main__":
  main()
