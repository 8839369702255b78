"""One ES outer step on the task family: P antithetic pairs of whole runs.

Samples one shape group of P family instances (distinct run seeds), perturbs
a two-parameter learning-rate schedule (log-linear from ``exp(theta[0])`` to
``exp(theta[1])`` over the budget, SGD with momentum 0.9) antithetically, and
trains the 2P runs as one vmapped program: the ``+`` and ``-`` member of a
pair share their instance (initialisation and minibatch order). Each run is
scored by its normalised fitness (final loss over the fixed validation split
divided by the instance's reference loss, computed once beforehand) and the
pairs combine into the antithetic ES gradient. Whole-run evaluation is the
setting PES (Vicol, Metz, Sohl-Dickstein, ICML 2021) makes unbiased with
truncations; the family itself follows learned_optimization's tiny tasks.

Also times one plain run of the same instance (a Python loop over a jitted
train step, then a jitted evaluation) in the same process. Every time is the
best of ``--reps`` repetitions after compilation. The last line is JSON with
``pairs``, ``seconds_per_outer_step`` and ``per_run_over_plain`` (the
population's seconds per run over the plain run's seconds), plus details.

  python scripts/bench_family_es.py            # 32 pairs, sampled budget
  python scripts/bench_family_es.py --quick    # 4 pairs, 100 steps
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrmeta.data import DataNotFoundError, locate
from lrmeta.experiments.timing import best_time
from lrmeta.meta import family as family_runs
from lrmeta.tasks import family as fam
from lrmeta.train import init_state, train_step


def make_log_linear_sgd(num_steps: int):
  """``theta -> SGD(momentum 0.9)`` at ``exp(lerp(theta[0], theta[1], t/T))``.

  Built once per budget so the compiled population program is reused.
  """
  def make_optimizer(theta):
    def rate(step):
      frac = jnp.minimum(step / num_steps, 1.0)
      return jnp.exp(theta[0] + (theta[1] - theta[0]) * frac)
    return optax.sgd(rate, momentum=0.9)
  return make_optimizer


def es_gradient(eps: np.ndarray, fitness: np.ndarray, sigma: float
                ) -> tuple[np.ndarray, int]:
  """Antithetic ES gradient over the pairs with a finite fitness difference.

  Args:
    eps: ``[P, d]`` perturbation directions.
    fitness: ``[2P]`` fitness of the ``+`` runs, then of the ``-`` runs.
    sigma: perturbation scale.

  Returns:
    ``(gradient [d], pairs used)``.
  """
  p = eps.shape[0]
  diff = fitness[:p] - fitness[p:]
  ok = np.isfinite(diff)
  grad = (np.where(ok, diff, 0.0)[:, None] * eps).sum(0)
  return grad / (2 * sigma * max(int(ok.sum()), 1)), int(ok.sum())


def es_outer_step(theta: np.ndarray, key: jax.Array, group, make_optimizer,
                  sigma: float, reference: np.ndarray):
  """One antithetic ES step over ``group`` (one pair per instance)."""
  p = len(group)
  eps = np.asarray(jax.random.normal(key, (p, theta.shape[0])))
  thetas = np.concatenate([theta + sigma * eps, theta - sigma * eps])
  keys = family_runs.group_keys(list(group) * 2)
  losses = family_runs.group_val_loss_fn(group[0].shape, make_optimizer)(
      jnp.asarray(thetas, jnp.float32), keys)
  fitness = np.asarray(losses, np.float64) / np.concatenate([reference] * 2)
  grad, used = es_gradient(eps, fitness, sigma)
  return grad, {"mean_fitness": float(np.nanmean(fitness)),
                "pairs_used": used}


def plain_run_seconds(instance: fam.Instance, optimizer, reps: int) -> float:
  """Best seconds of one plain run: Python loop of a jitted step, then a
  jitted evaluation of the validation split."""
  task = fam.instance_task(instance)
  step = jax.jit(lambda s: train_step(task, optimizer, s))
  evaluate = jax.jit(lambda s: task.evaluate(s.params, s.model_state, "val"))
  state0 = init_state(task, optimizer, instance.key())

  def run(_):
    s = state0
    for _ in range(instance.num_steps):
      s, _ = step(s)
    return evaluate(s)["loss"]
  return best_time(run, None, reps)


def _family(args) -> fam.Family:
  family = fam.Family()
  try:
    locate("cifar10")
  except DataNotFoundError as e:
    print(f"CIFAR-10 not found, sampling Fashion-MNIST only: {e}")
    family = dataclasses.replace(family, sources=tuple(
        s for s in family.sources if s[0] != "cifar10"))
  if args.steps is not None:
    family = dataclasses.replace(family, num_steps=(args.steps,),
                                 held_out_combos=())
  return family


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--pairs", type=int, default=32)
  p.add_argument("--steps", type=int, default=None,
                 help="budget T of every run (default: sampled)")
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--sigma", type=float, default=0.1)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--quick", action="store_true",
                 help="4 pairs, 100 steps, 2 repetitions")
  args = p.parse_args()
  if args.quick:
    args.pairs, args.steps, args.reps = 4, args.steps or 100, 2

  key = jax.random.key(args.seed)
  k_group, k_step = jax.random.split(key)
  group = _family(args).sample_group(k_group, args.pairs)
  shape = group[0].shape
  print(f"backend {jax.default_backend()}; group {shape.name} x{len(group)}")

  t = time.perf_counter()
  reference = family_runs.reference_losses(group)
  t_ref_first = time.perf_counter() - t
  ref_fn = family_runs.group_val_loss_fn(shape, family_runs.reference_optimizer)
  t_ref = best_time(lambda _: ref_fn(None, family_runs.group_keys(group)), None,
                    args.reps)

  make_optimizer = make_log_linear_sgd(shape.num_steps)
  theta = np.log(np.asarray([family_runs.REFERENCE_LR, family_runs.REFERENCE_LR / 10]))
  t = time.perf_counter()
  grad, info = es_outer_step(theta, k_step, group, make_optimizer,
                             args.sigma, reference)
  t_first = time.perf_counter() - t
  t_step = best_time(lambda _: es_outer_step(
      theta, k_step, group, make_optimizer, args.sigma, reference)[0], None,
                     args.reps)

  t_plain = plain_run_seconds(group[0], make_optimizer(jnp.asarray(theta)),
                              args.reps)
  runs = 2 * len(group)
  ratio = (t_step / runs) / t_plain
  print(f"ES step: {runs} runs of {shape.num_steps} steps in {t_step:.3f} s "
        f"({t_step / runs * 1e3:.2f} ms/run; first call {t_first:.1f} s)")
  print(f"plain run: {t_plain * 1e3:.2f} ms; population per run / plain = "
        f"{ratio:.3f}")
  print(f"reference runs: {t_ref:.3f} s for {len(group)} (first call with "
        f"compile {t_ref_first:.1f} s); mean reference loss "
        f"{reference.mean():.4f}; gradient {grad.tolist()}; {info}")
  print(json.dumps({
      "pairs": len(group), "seconds_per_outer_step": t_step,
      "per_run_over_plain": ratio, "backend": jax.default_backend(),
      "instance_shape": shape.name, "steps": shape.num_steps,
      "plain_seconds_per_run": t_plain,
      "reference_seconds_per_group": t_ref,
      "first_call_seconds": t_first, "mean_fitness": info["mean_fitness"],
      "pairs_used": info["pairs_used"], "es_gradient": grad.tolist()}))


if __name__ == "__main__":
  main()
