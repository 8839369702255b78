"""Per-step overhead of each controller, as a ratio to its base optimizer alone.

Each controller family registers rows in ``CASES`` below: a name, the base
optimizer, and the same base with the controller. Both run the Fashion-MNIST
small CNN for the same scanned steps; the ratio is controlled / base ms/step
(best of ``--reps``). The last line is ``{"overhead": {name: ratio, ...}}``.

  python scripts/bench_controller_overhead.py
  python scripts/bench_controller_overhead.py --only hd_sgd_global
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import jax
import optax

from lrmeta.tasks import make_task
from lrmeta.train import init_state, run_steps

Factory = Callable[[], optax.GradientTransformation]
# name -> (base optimizer factory, controlled optimizer factory)
CASES: dict[str, tuple[Factory, Factory]] = {}


def register(name: str, base: Factory, controlled: Factory) -> None:
  CASES[name] = (base, controlled)


def _sgd():
  return optax.sgd(0.05, momentum=0.9)


def _adam():
  return optax.adam(1e-3)


# Sanity row: optax.inject_hyperparams around SGD (should be ~1.0).
register("inject_hyperparams_sgd", _sgd,
         lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=0.05,
                                                     momentum=0.9))


def _register_families():
  """Rows of the controller families (each family adds its block here)."""
  # -- hypergradient controllers (issue: hypergradient) --------------------
  try:
    from lrmeta.controllers import hypergradient as hd  # pylint: disable=import-outside-toplevel
  except ImportError:
    hd = None
  if hd is not None and hasattr(hd, "overhead_cases"):
    for name, base, ctl in hd.overhead_cases():
      register(name, base, ctl)
  # -- MLR-SNet ------------------------------------------------------------
  try:
    from lrmeta.controllers import mlr_snet  # pylint: disable=import-outside-toplevel
  except ImportError:
    mlr_snet = None
  if mlr_snet is not None and hasattr(mlr_snet, "overhead_cases"):
    for name, base, ctl in mlr_snet.overhead_cases():
      register(name, base, ctl)
  # -- RL policy -----------------------------------------------------------
  try:
    from lrmeta.controllers import rl_policy  # pylint: disable=import-outside-toplevel
  except ImportError:
    rl_policy = None
  if rl_policy is not None and hasattr(rl_policy, "overhead_cases"):
    for name, base, ctl in rl_policy.overhead_cases():
      register(name, base, ctl)


def _ms_per_step(task, opt, steps, reps):
  fn = jax.jit(lambda s: run_steps(task, opt, s, steps))
  s = init_state(task, opt, jax.random.key(0))
  s, _ = fn(s)
  jax.block_until_ready(s)
  best = float("inf")
  for _ in range(reps):
    t = time.perf_counter()
    s, _ = fn(s)
    jax.block_until_ready(s)
    best = min(best, time.perf_counter() - t)
  return best / steps * 1e3


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--only", default="", help="comma-separated row names")
  args = p.parse_args()
  _register_families()
  task = make_task("fashion_mnist", "small_cnn",
                   data_kwargs={"max_train": 20000})
  only = set(filter(None, args.only.split(",")))
  base_cache: dict[int, float] = {}
  overhead = {}
  print(f"backend={jax.default_backend()} task={task.name} batch="
        f"{task.batch_size} steps={args.steps} best of {args.reps}")
  print(f"{'controller':<28}{'base ms':>10}{'ctl ms':>10}{'ratio':>8}")
  for name, (base, ctl) in CASES.items():
    if only and name not in only:
      continue
    key = id(base)
    if key not in base_cache:
      base_cache[key] = _ms_per_step(task, base(), args.steps, args.reps)
    b = base_cache[key]
    c = _ms_per_step(task, ctl(), args.steps, args.reps)
    overhead[name] = round(c / b, 3)
    print(f"{name:<28}{b:>10.2f}{c:>10.2f}{c / b:>8.3f}")
  print(json.dumps({"overhead": overhead, "backend": jax.default_backend()}))


if __name__ == "__main__":
  main()
