"""Hand-designed baselines tuned the same way by every comparison job."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrmeta.experiments.optim import base_optimizer, simple_schedule
from lrmeta.tasks import Task
from lrmeta.train import History, stack_hparams, train_population


def seed_keys(seeds: Sequence[int]) -> jax.Array:
  """One PRNG key per seed, stacked (a population's ``keys``)."""
  return jnp.stack([jax.random.key(int(s)) for s in seeds])


def tune_schedule(task: Task, kind: str, grid, steps: int, seeds, *,
                  optimizer: str = "sgd", momentum: float,
                  weight_decay: float, eval_every: int, eval_examples: int,
                  quiet: bool) -> tuple[float, list[float], History]:
  """Trains every (rate, seed) of ``grid`` x ``seeds`` as one population and
  picks the peak rate of ``kind`` with the best mean final validation
  accuracy (a diverged rate counts as 0).

  Returns:
    ``(best_lr, val_acc_by_lr, history of the best rate's seeds)``.
  """
  grid, seeds = tuple(grid), tuple(seeds)

  def make(h):
    return base_optimizer(optimizer, simple_schedule(kind, h["lr"], steps),
                          momentum=momentum, weight_decay=weight_decay)

  lrs = [lr for lr in grid for _ in seeds]
  keys = seed_keys([s for _ in grid for s in seeds])
  _, hist = train_population(task, make, stack_hparams({"lr": lrs}), keys,
                             steps, eval_every=eval_every,
                             eval_examples=eval_examples or None,
                             progress=not quiet)
  val = np.nan_to_num(hist.final("val_acc").reshape(len(grid), len(seeds)))
  best = int(np.argmax(val.mean(1)))
  rows = slice(best * len(seeds), (best + 1) * len(seeds))
  sub = type(hist)({k: v[rows] for k, v in hist.steps.items()},
                   hist.eval_steps, {k: v[rows] for k, v in hist.evals.items()},
                   hist.wall_time)
  return grid[best], val.mean(1).tolist(), sub
