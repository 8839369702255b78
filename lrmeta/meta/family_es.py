"""Whole-run antithetic ES over the task family.

:class:`FamilyES` is an :class:`~lrmeta.meta.estimators.Estimator` whose
every call scores ``num_pairs`` antithetic pairs of *whole* training runs,
each pair on its own family instance (:mod:`lrmeta.tasks.family`): the
``+`` and ``-`` run of a pair share the instance's initialisation and
minibatch order, and different pairs see different instances. A run's
fitness is its final loss over the instance's fixed 2,000-image validation
split divided by the same run's loss under the constant reference rate
(:func:`lrmeta.meta.family.normalized_fitness`), so easy and hard instances
weigh alike. The gradient estimate is the antithetic one of Salimans et al.
(2017),

.. math::

  \\hat g = \\frac{1}{2 \\sigma N} \\sum_{i=1}^{N}
      (F_i(\\theta + \\sigma \\epsilon_i) - F_i(\\theta - \\sigma \\epsilon_i))
      \\, \\epsilon_i ,

over the pairs whose two fitnesses are finite (a diverged pair is left out).
``sigma`` is in the meta-parameters' own units: for a controller whose theta
holds log rates, a perturbation of 0.1 scales a rate by about 10 %.

Whole runs have neither the short-horizon bias of truncations (Wu, Ren,
Liao, Grosse, ICLR 2018) nor the exploding gradients of backprop through
long unrolls (Metz et al. 2019); the task family makes them cheap enough.

Compiled programs are reused across calls: each call draws its instances
from a fixed pool of training *shapes* (``shapes``; one compiled program per
shape and budget), ``shapes_per_step`` of them per call with
``num_pairs / shapes_per_step`` pairs each, and fresh run seeds.

The estimator runs on the host (it groups runs by shape and calls one
compiled program per group), so :attr:`FamilyES.host_side` tells
:func:`lrmeta.meta.meta_train` not to ``jit`` the outer step around it.

References:
  Salimans, Ho, Chen, Sidor, Sutskever, "Evolution Strategies as a Scalable
  Alternative to Reinforcement Learning", 2017.
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled
  Computation Graphs with Persistent Evolution Strategies", ICML 2021.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from lrmeta.meta import family as runs
from lrmeta.meta.estimators import EstimatorState
from lrmeta.meta.noise import host_normal_like
from lrmeta.tasks.family import HELD_OUT_SEED_BASE, Instance

Theta = Any
# theta -> Optax transformation, for one budget.
MakeOptimizer = Callable[[Theta], optax.GradientTransformation]
# budget T -> MakeOptimizer (called once per budget; the result is cached so
# the compiled programs of that budget are reused).
OptimizerForBudget = Callable[[int], MakeOptimizer]
# budget T -> the training loop's signal function (a controller's
# ``signals(config, T)``), when it reads more than the minibatch loss.
SignalsForBudget = Callable[[int], Any]

# Training runs draw seeds in [0, VALIDATION_SEED_BASE); the fixed
# validation instances use seeds from VALIDATION_SEED_BASE up, and held-out
# instances (evaluation) from HELD_OUT_SEED_BASE up: the three never meet.
VALIDATION_SEED_BASE = HELD_OUT_SEED_BASE // 2


# ``n`` standard normal draws shaped like ``theta`` (float64 numpy, stacked
# on axis 0): the one ES noise draw of :mod:`lrmeta.meta.noise`.
tree_normal = host_normal_like


def tree_cosine(a: Theta, b: Theta) -> float:
  """Cosine similarity of two pytrees of equal structure, flattened."""
  fa = np.concatenate([np.ravel(x) for x in jax.tree.leaves(a)]).astype(
      np.float64)
  fb = np.concatenate([np.ravel(x) for x in jax.tree.leaves(b)]).astype(
      np.float64)
  den = np.linalg.norm(fa) * np.linalg.norm(fb)
  return float(fa @ fb / den) if den > 0 else float("nan")


def _path_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def perturbed_mask(theta: Theta, groups: Sequence[str]) -> Theta:
  """A pytree of bools shaped like ``theta``: True on the leaves under any
  of ``groups`` (key paths, ``/`` between levels: ``"knots"``,
  ``"params/Dense_2"``).

  Raises:
    ValueError: a group that names no leaf of ``theta``.
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(theta)
  names = [_path_name(p) for p, _ in leaves]
  groups = tuple(g.strip("/") for g in groups)

  def under(name, g):
    return name == g or name.startswith(g + "/")

  unknown = [g for g in groups if not any(under(n, g) for n in names)]
  if unknown:
    tops = sorted({n.split("/")[0] for n in names})
    raise ValueError(f"perturb names {unknown}, not keys of theta (its "
                     f"top-level keys: {tops}; nested ones are written "
                     f"with '/', e.g. 'params/Dense_2')")
  return treedef.unflatten([any(under(n, g) for g in groups)
                            for n in names])


def restrict(tree: Theta, mask: Theta) -> Theta:
  """``tree`` with the leaves where ``mask`` is False set to zero."""
  return jax.tree.map(lambda x, m: x if m else np.zeros_like(x), tree, mask)


def antithetic_gradient(eps: Theta, fit_plus: np.ndarray,
                        fit_minus: np.ndarray, sigma: float
                        ) -> tuple[Theta, int]:
  """The antithetic ES gradient over the pairs with finite fitnesses.

  Args:
    eps: perturbation directions, leaves ``[N, ...]``.
    fit_plus: ``[N]`` fitness of ``theta + sigma * eps``.
    fit_minus: ``[N]`` fitness of ``theta - sigma * eps``.
    sigma: perturbation scale.

  Returns:
    ``(gradient shaped like one direction, pairs used)``; the gradient is 0
    when no pair is finite.
  """
  diff = np.asarray(fit_plus, np.float64) - np.asarray(fit_minus, np.float64)
  ok = np.isfinite(diff)
  used = int(ok.sum())
  weight = np.where(ok, diff, 0.0) / (2.0 * sigma * max(used, 1))
  grad = jax.tree.map(lambda e: np.tensordot(weight, e, axes=1), eps)
  return grad, used


@dataclasses.dataclass(frozen=True)
class FamilyES:
  """Antithetic ES over whole runs of family instances (see the module doc).

  Attributes:
    optimizer_for_budget: ``T -> (theta -> Optax transformation)``.
    shapes: the pool of training shapes (:attr:`Instance.shape`) calls draw
      from.
    num_pairs: antithetic pairs per call (one instance each).
    sigma: perturbation scale, in theta's units.
    shapes_per_step: shapes drawn per call (must divide ``num_pairs``).
    truncate: score each run after this many steps instead of at the end
      of its budget (the controller still plans for the whole budget): the
      short-horizon objective, for ablations (``None``: whole runs).
    perturb: parameter groups of a dict ``theta`` to perturb, each a key
      path with ``/`` between levels (``"knots"``, ``"params/Dense_2"``),
      selecting every leaf under it (``None``: every leaf); the others keep
      a zero gradient. ES needs about ``d`` pairs to
      resolve ``d`` directions, so restricting a large controller to a few
      of its parameters (e.g. MLR-SNet's output layer) is what makes the
      estimate informative at tens of pairs.
    signals_for_budget: ``T -> signal function`` of the runs (``None``: the
      minibatch loss), for controllers that read more (e.g. the RL policy's
      validation loss once per decision).
    fitness_cap: clip every normalised fitness at this value and score a
      non-finite run at it (``None``: no clipping; a pair with a diverged
      run is left out). For controllers whose perturbations can blow a run
      up (e.g. an RL actor that multiplies the rate every decision): a run
      whose loss explodes to 1e20 then counts as merely "very bad" instead
      of dominating the estimate, and ES still learns to avoid it.
  """

  optimizer_for_budget: OptimizerForBudget
  shapes: tuple[Instance, ...]
  num_pairs: int = 32
  sigma: float = 0.1
  shapes_per_step: int = 4
  perturb: tuple[str, ...] | None = None
  truncate: int | None = None
  signals_for_budget: SignalsForBudget | None = None
  fitness_cap: float | None = None

  host_side = True  # not traceable: meta_train leaves the outer step unjitted

  def __post_init__(self):
    shapes = tuple(dict.fromkeys(s.shape for s in self.shapes))
    object.__setattr__(self, "shapes", shapes)
    if not shapes:
      raise ValueError("FamilyES needs at least one training shape")
    if self.num_pairs <= 0 or self.sigma <= 0:
      raise ValueError(f"num_pairs and sigma must be positive, got "
                       f"{self.num_pairs}, {self.sigma}")
    if (self.shapes_per_step <= 0 or self.shapes_per_step > len(shapes)
        or self.num_pairs % self.shapes_per_step):
      raise ValueError(
          f"shapes_per_step must divide num_pairs ({self.num_pairs}) and be "
          f"at most the {len(shapes)} training shapes, got "
          f"{self.shapes_per_step}")
    if self.perturb is not None:
      object.__setattr__(self, "perturb", tuple(self.perturb))
    if self.truncate is not None and self.truncate <= 0:
      raise ValueError(f"truncate must be positive, got {self.truncate}")
    if self.fitness_cap is not None and not self.fitness_cap > 0:
      raise ValueError(f"fitness_cap must be positive, got "
                       f"{self.fitness_cap}")

  @property
  def pairs_per_shape(self) -> int:
    return self.num_pairs // self.shapes_per_step

  # -- instances -------------------------------------------------------------

  def instances(self, key: jax.Array) -> tuple[Instance, ...]:
    """The ``num_pairs`` instances of one call (deterministic in ``key``):
    ``shapes_per_step`` distinct shapes of the pool, each with
    ``pairs_per_shape`` distinct fresh run seeds below
    :data:`VALIDATION_SEED_BASE`."""
    k_shape, k_seed = jax.random.split(key)
    picks = np.asarray(jax.random.permutation(k_shape, len(self.shapes)))
    seeds: list[int] = []
    draw = 0
    while len(seeds) < self.num_pairs:  # a repeat is rare: draw again
      new = np.asarray(jax.random.randint(jax.random.fold_in(k_seed, draw),
                                          (self.num_pairs,), 0,
                                          VALIDATION_SEED_BASE))
      seeds.extend(s for s in dict.fromkeys(new.tolist()) if s not in seeds)
      draw += 1
    per = self.pairs_per_shape
    return tuple(
        dataclasses.replace(self.shapes[picks[i // per]], seed=s)
        for i, s in enumerate(seeds[:self.num_pairs]))

  def validation_instances(self, seeds_per_shape: int | None = None
                           ) -> tuple[Instance, ...]:
    """A fixed validation set: every pool shape with ``seeds_per_shape``
    run seeds (default ``2 * pairs_per_shape``, the population size of one
    call's groups, so the compiled programs are shared)."""
    n = seeds_per_shape or 2 * self.pairs_per_shape
    return tuple(dataclasses.replace(shape, seed=VALIDATION_SEED_BASE + i)
                 for shape in self.shapes for i in range(n))

  # -- runs ------------------------------------------------------------------

  def _losses(self, instances: Sequence[Instance], thetas: Theta
              ) -> np.ndarray:
    """Final validation losses; ``thetas`` leaves ``[len(instances), ...]``
    (one theta per run), grouped into one program per shape."""
    return runs.final_val_losses(
        instances, None, stacked=jax.tree.map(
            lambda x: np.asarray(x, np.float32), thetas),
        program=self._program)

  def _program(self, shape: Instance):
    """How a shape's runs are built and scored (for
    :func:`lrmeta.meta.family.final_val_losses`): the scored run, the
    optimizer and the signals of its budget."""
    make = _for_budget(self.optimizer_for_budget, shape.num_steps)
    signals = (None if self.signals_for_budget is None else
               _for_budget(self.signals_for_budget, shape.num_steps))
    return self._scored(shape), make, signals

  def _scored(self, instance: Instance) -> Instance:
    """The run that is scored: the instance, cut at ``truncate`` steps."""
    if self.truncate is None or self.truncate >= instance.num_steps:
      return instance
    return dataclasses.replace(instance, num_steps=self.truncate)

  def _normalized(self, instances, losses) -> np.ndarray:
    fit = runs.normalized_fitness([self._scored(i) for i in instances],
                                  losses)
    if self.fitness_cap is None:
      return fit
    return np.where(np.isfinite(fit), np.minimum(fit, self.fitness_cap),
                    self.fitness_cap)

  def fitness(self, theta: Theta, instances: Sequence[Instance]
              ) -> np.ndarray:
    """Normalised fitness of ``theta`` on each of ``instances`` (lower is
    better; the reference rate scores 1)."""
    n = len(instances)
    thetas = jax.tree.map(
        lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), theta)
    return self._normalized(instances, self._losses(instances, thetas))

  def grid_fitness(self, thetas: Sequence[Theta],
                   instances: Sequence[Instance]) -> np.ndarray:
    """Normalised fitness of every theta on every instance, as one
    population per shape: ``float[len(thetas), len(instances)]`` (a dense
    grid of the objective ES estimates, for known-answer checks)."""
    runs_ = [inst for _ in thetas for inst in instances]
    stacked = jax.tree.map(
        lambda *x: np.repeat(np.stack([np.asarray(v) for v in x]),
                             len(instances), axis=0), *thetas)
    fit = self._normalized(runs_, self._losses(runs_, stacked))
    return fit.reshape(len(thetas), len(instances))

  # -- the Estimator protocol ------------------------------------------------

  def init(self, theta: Theta, key: jax.Array) -> EstimatorState:
    """No inner state persists between calls; the state counts calls."""
    del theta
    return EstimatorState((), jnp.stack([key]), jnp.zeros((1,), jnp.int32),
                          (), jnp.zeros((1,), bool))

  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    """One antithetic estimate over ``num_pairs`` whole runs (host side)."""
    grad, metrics = self.estimate_with_metrics(theta, key)
    grad = jax.tree.map(lambda g, t: jnp.asarray(g, jnp.result_type(t)),
                        grad, theta)
    state = state._replace(episode=state.episode + 1,
                           diverged=jnp.asarray([metrics["diverged"] > 0]))
    return grad, state, {k: jnp.asarray(v) for k, v in metrics.items()}

  def estimate_with_metrics(self, theta: Theta, key: jax.Array
                            ) -> tuple[Theta, dict[str, float]]:
    """The estimate as numpy, with ``meta_loss`` (mean fitness of the
    finite runs), ``diverged`` (pairs left out), ``num_ok`` and
    ``fitness_spread`` (mean |F+ - F-|)."""
    k_inst, k_eps = jax.random.split(key)
    inst = self.instances(k_inst)
    n = self.num_pairs
    eps = tree_normal(k_eps, theta, n)
    if self.perturb is not None:
      eps = restrict(eps, perturbed_mask(theta, self.perturb))
    plus = jax.tree.map(lambda t, e: np.asarray(t) + self.sigma * e,
                        theta, eps)
    minus = jax.tree.map(lambda t, e: np.asarray(t) - self.sigma * e,
                         theta, eps)
    both = jax.tree.map(lambda a, b: np.concatenate([a, b]), plus, minus)
    fit = self._normalized(inst + inst, self._losses(inst + inst, both))
    grad, used = antithetic_gradient(eps, fit[:n], fit[n:], self.sigma)
    finite = fit[np.isfinite(fit)]
    diff = np.abs(fit[:n] - fit[n:])
    return grad, {
        "meta_loss": float(finite.mean()) if finite.size else float("nan"),
        "diverged": float(n - used), "num_ok": float(used),
        "fitness_spread": float(np.nanmean(diff)) if used else float("nan")}


@functools.lru_cache(maxsize=None)
def _for_budget(optimizer_for_budget: OptimizerForBudget, num_steps: int
                ) -> MakeOptimizer:
  """``optimizer_for_budget(num_steps)``, once per process: the same object
  keys the compiled programs of every estimator built from it."""
  return optimizer_for_budget(num_steps)


def es_cosine(estimator: FamilyES, theta: Theta, key: jax.Array) -> float:
  """The ES signal check: the cosine similarity of two independent
  estimates at the same ``theta`` (independent instances and directions).

  Near 0 the estimate is mostly noise; for ``N`` pairs in ``d`` dimensions
  and a noise-free fitness its expectation is about ``N / (N + d + 1)``.
  """
  return es_cosine_curve(estimator, theta, key, 1)[-1][1]


def es_cosine_curve(estimator: FamilyES, theta: Theta, key: jax.Array,
                    calls: int, progress: bool = False
                    ) -> list[tuple[int, float]]:
  """The signal check with more pairs than one call holds: each of the two
  estimates is the mean of ``calls`` independent calls (``calls *
  num_pairs`` pairs, weighted by the pairs each call used), and their
  cosine is recorded after 1, 2, 4, ... calls and after the last.

  Returns:
    ``[(pairs per estimate, cosine), ...]``, the last entry after all
    ``calls``.
  """
  sums: list = [None, None]
  curve = []
  marks = {2 ** k for k in range(calls.bit_length())} | {calls}
  keys = jax.random.split(key)
  for c in tqdm(range(calls), disable=not progress, desc="ES signal check",
                unit="call", dynamic_ncols=True, leave=False):
    for e in range(2):
      k = keys[e] if c == 0 else jax.random.fold_in(keys[e], c)
      g, m = estimator.estimate_with_metrics(theta, k)
      w = m["num_ok"]
      g = jax.tree.map(lambda x, w=w: w * np.asarray(x, np.float64), g)
      sums[e] = g if sums[e] is None else jax.tree.map(np.add, sums[e], g)
    if c + 1 in marks:  # the means' cosine equals the sums' cosine
      curve.append(((c + 1) * estimator.num_pairs,
                    tree_cosine(sums[0], sums[1])))
  return curve


def validation_objective(estimator: FamilyES, theta: Theta,
                         instances: Sequence[Instance]) -> float:
  """Mean normalised fitness of ``theta`` (unperturbed) on fixed
  ``instances`` (e.g. :meth:`FamilyES.validation_instances`)."""
  return float(np.nanmean(estimator.fitness(theta, instances)))


__all__ = ["FamilyES", "VALIDATION_SEED_BASE", "antithetic_gradient",
           "es_cosine", "es_cosine_curve", "tree_cosine", "tree_normal",
           "validation_objective"]
