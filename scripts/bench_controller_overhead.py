"""Per-step overhead of each controller, as a ratio to its base optimizer alone.

Each row of :func:`cases` is a name, the base optimizer, and the same base
with the controller (one function per controller family below). Both run the
Fashion-MNIST small CNN for the same scanned steps; the ratio is controlled /
base ms/step (best of ``--reps`` alternating repetitions). The last line is
``{"overhead": {name: ratio, ...}, "backend": ...}``.

  python scripts/bench_controller_overhead.py
  python scripts/bench_controller_overhead.py --only hd_sgd_global
"""

from __future__ import annotations

import argparse
import json
from typing import Callable

import jax
import optax

from lrmeta.controllers.hypergradient import GRANULARITIES, hd_adam, hd_sgd
from lrmeta.controllers.mlr_snet import init_mlr_snet_params, mlr_snet_sgd
from lrmeta.controllers.rl_policy import PolicyConfig, init_actor, rl_lr_policy
from lrmeta.controllers.self_adaptive import self_adaptive_sgd
from lrmeta.experiments.timing import best_time
from lrmeta.tasks import make_task
from lrmeta.train import init_state, run_steps

Factory = Callable[[], optax.GradientTransformation]
Row = tuple[str, Factory, Factory]  # (name, base factory, controlled factory)


def _sgd():
  return optax.sgd(0.05, momentum=0.9)


def _adam():
  return optax.adam(1e-3)


def sanity_rows() -> list[Row]:
  """optax.inject_hyperparams around SGD (its ratio should be about 1.0)."""
  return [("inject_hyperparams_sgd", _sgd,
           lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=0.05,
                                                       momentum=0.9))]


def hypergradient_rows() -> list[Row]:
  """HD (every granularity, both rules) and the self-adaptive rate.

  Each controlled optimizer runs the same base as its row's base factory.
  """
  rows = []
  for gran in GRANULARITIES:
    rows.append((f"hd_sgd_{gran}", _sgd,
                 lambda g=gran: hd_sgd(0.05, momentum=0.9, granularity=g)))
  rows.append(("hd_sgd_mult_global", _sgd,
               lambda: hd_sgd(0.05, momentum=0.9, rule="multiplicative")))
  for gran in ("global", "per_layer"):
    rows.append((f"hd_adam_{gran}", _adam,
                 lambda g=gran: hd_adam(1e-3, granularity=g)))
  rows.append(("self_adaptive_sgd", _sgd,
               lambda: self_adaptive_sgd(0.05, momentum=0.9)))
  return rows


def mlr_snet_rows() -> list[Row]:
  """MLR-SNet: the base is plain SGD with the same momentum and weight
  decay; the controlled row runs the LSTM (hidden 50) once per step."""
  theta = init_mlr_snet_params(jax.random.key(0))

  def base():
    return optax.chain(optax.add_decayed_weights(5e-4),
                       optax.sgd(0.05, momentum=0.9))

  def controlled():
    return mlr_snet_sgd(theta, momentum=0.9)

  return [("mlr_snet_sgd", base, controlled)]


def rl_policy_rows() -> list[Row]:
  """SGD(0.05, m=0.9) with and without a (random, frozen) RL policy acting
  every 20 steps on the ``xu2019`` features."""
  cfg = PolicyConfig(steps_per_action=20, total_steps=400, features="xu2019")
  actor = init_actor(cfg, jax.random.key(0))

  def base():
    return optax.sgd(0.05, momentum=0.9)

  def controlled():
    return optax.chain(optax.sgd(0.05, momentum=0.9), rl_lr_policy(actor, cfg))

  return [("rl_policy_sgd", base, controlled)]


def cases() -> dict[str, tuple[Factory, Factory]]:
  """name -> (base factory, controlled factory), in the printed order."""
  out = {}
  for family in (sanity_rows, hypergradient_rows, mlr_snet_rows,
                 rl_policy_rows):
    for name, base, controlled in family():
      if name in out:
        raise ValueError(f"duplicate overhead row {name!r}")
      out[name] = (base, controlled)
  return out


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
  task = make_task("fashion_mnist", "small_cnn",
                   data_kwargs={"max_train": 20000})
  only = set(filter(None, args.only.split(",")))
  overhead = {}
  print(f"backend={jax.default_backend()} task={task.name} batch="
        f"{task.batch_size} steps={args.steps} best of {args.reps} "
        "(base and controlled alternated)")
  print(f"{'controller':<28}{'base ms':>10}{'ctl ms':>10}{'ratio':>8}")
  for name, (base, ctl) in cases().items():
    if only and name not in only:
      continue
    b, c = _paired_ms_per_step(task, base(), ctl(), args.steps, args.reps)
    overhead[name] = round(c / b, 3)
    print(f"{name:<28}{b:>10.2f}{c:>10.2f}{c / b:>8.3f}", flush=True)
  print(json.dumps({"overhead": overhead, "backend": jax.default_backend()}))


if __name__ == "__main__":
  main()
