"""Per-step overhead of each controller, as a ratio to its base optimizer alone.

Each controller family registers rows in ``CASES`` (its module's
``overhead_cases()``, listed in ``FAMILY_MODULES``): a name, the base
optimizer, and the same base with the controller. Both run the Fashion-MNIST
small CNN for the same scanned steps; the ratio is controlled / base ms/step
(best of ``--reps`` alternating repetitions). The last line is
``{"overhead": {name: ratio, ...}}``.

  python scripts/bench_controller_overhead.py
  python scripts/bench_controller_overhead.py --only hd_sgd_global
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Callable

import jax
import optax

from lrmeta.experiments.timing import best_time
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


# Each controller family's module exposes overhead_cases() -> rows.
FAMILY_MODULES = ("lrmeta.controllers.hypergradient",
                  "lrmeta.controllers.mlr_snet",
                  "lrmeta.controllers.rl_policy")


def _register_families():
  """Rows of the controller families (a missing module is an error)."""
  for module in FAMILY_MODULES:
    # import_module, not `from lrmeta.controllers import x`: the package
    # re-exports functions (e.g. `mlr_snet`) that share their module's name.
    for name, base, ctl in importlib.import_module(module).overhead_cases():
      register(name, base, ctl)


def _paired_ms_per_step(task, base, ctl, steps, reps):
  """ms/step of base and controlled, timed in alternation.

  Alternating A/B repetitions (best of each) keeps a change of load on the
  shared machine from landing on one side of the ratio only.
  """
  fns, states = [], []
  for opt in (base, ctl):
    fn = jax.jit(lambda s, opt=opt: run_steps(task, opt, s, steps))
    fns.append(fn)
    states.append(init_state(task, opt, jax.random.key(0)))
  best = [float("inf"), float("inf")]
  for _ in range(max(1, reps)):
    for i in (0, 1):
      t = best_time(fns[i], states[i], 1, has_aux=True)
      best[i] = min(best[i], t)
  return best[0] / steps * 1e3, best[1] / steps * 1e3


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
  overhead = {}
  print(f"backend={jax.default_backend()} task={task.name} batch="
        f"{task.batch_size} steps={args.steps} best of {args.reps} "
        "(base and controlled alternated)")
  print(f"{'controller':<28}{'base ms':>10}{'ctl ms':>10}{'ratio':>8}")
  for name, (base, ctl) in CASES.items():
    if only and name not in only:
      continue
    b, c = _paired_ms_per_step(task, base(), ctl(), args.steps, args.reps)
    overhead[name] = round(c / b, 3)
    print(f"{name:<28}{b:>10.2f}{c:>10.2f}{c / b:>8.3f}", flush=True)
  print(json.dumps({"overhead": overhead, "backend": jax.default_backend()}))


if __name__ == "__main__":
  main()
