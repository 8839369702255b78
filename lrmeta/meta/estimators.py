"""Meta-gradient estimators behind one protocol.

Every estimator holds a population of ``num_tasks`` inner runs (vmapped) of
an :class:`~lrmeta.meta.problem.InnerProblem`, each an episode of
``horizon`` inner steps, and satisfies the :class:`Estimator` protocol, two
pure functions the outer loop calls:

* ``init(theta, key) -> EstimatorState``;
* ``estimate(theta, state, key) -> (meta_grad, state, metrics)``, with
  ``metrics["num_ok"]`` the members that entered the average.

Each ``estimate`` call processes one truncation of ``window`` steps of every
member's episode (plus ``skip`` forward-only steps before it, for truncated
backprop), then scores it with ``problem.meta_loss``. When an episode reaches
``horizon`` the member restarts from a fresh initialisation (a new key).
``window == horizon`` is the untruncated case: every call is one whole run.

The meta-objective is therefore the sum over truncations of the meta-loss at
each truncation's end (the usual truncated objective, learned_optimization);
with one truncation it is the meta-loss after the full unroll.

* :class:`TruncatedBackprop` (and :func:`unrolled`, :func:`one_step_lookahead`):
  reverse-mode through the window, with the state at the window start
  treated as constant (biased for ``window < horizon``).
* :class:`OnlineLookahead`: MLR-SNet's own meta-training, a virtual
  one-step look-ahead every ``every`` steps of one long run, ``theta``
  updated online before the real step.
* :class:`AntitheticES`: antithetic Gaussian perturbations of ``theta`` over
  the window, ``N`` pairs vmapped (biased for ``window < horizon``).
* :class:`PES`: persistent evolution strategies; each pair keeps its own
  perturbed inner runs and the sum of its perturbations since the episode
  start, which makes the sum of estimates over an episode unbiased for the
  Gaussian-smoothed episode objective.

Both ES estimators share one antithetic core (sample the pairs, run the
``+`` and ``-`` members, mask non-finite pairs, combine); they differ in
where a pair's runs start and which direction multiplies the loss
difference.

NaN guard: a member (or ES pair) whose meta-loss or gradient is not finite is
left out of the average (``metrics["diverged"]`` counts members with at least
one non-finite run) and the member's inner runs restart at the next call, so
a diverging run never poisons ``theta``.

The protocol, the population state and the episode bookkeeping live in
:mod:`lrmeta.meta.estimator_base`, :class:`OnlineLookahead` in
:mod:`lrmeta.meta.online_lookahead` and the ES estimators in
:mod:`lrmeta.meta.es`; every name above is importable from here.

References:
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled
  Computation Graphs with Persistent Evolution Strategies", ICML 2021.
  Salimans et al., "Evolution Strategies as a Scalable Alternative to
  Reinforcement Learning", 2017 (antithetic sampling).
  Shu et al., "MLR-SNet", TPAMI 2022 (one-step lookahead meta-update).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrmeta.meta.es import PES, AntitheticES
from lrmeta.meta.estimator_base import (Estimator, EstimatorState, Theta,
                                        _Estimator, _masked_mean, _metrics,
                                        tree_isfinite)
from lrmeta.meta.online_lookahead import (OnlineLookahead,
                                          carry_controller_state)
from lrmeta.meta.problem import InnerProblem


@dataclasses.dataclass(frozen=True)
class TruncatedBackprop(_Estimator):
  """Reverse-mode meta-gradient through windows of ``window`` inner steps.

  With ``window == horizon`` this is full unrolled backprop (see
  :func:`unrolled`). ``skip`` forward-only steps run before each window
  (no gradient), so ``window=1, skip=t_val-1`` is a one-step
  differentiable look-ahead every ``t_val`` steps, scored on a meta batch,
  in which the differentiated step is the real one (the MLR-SNet authors'
  protocol is :class:`OnlineLookahead`).

  Attributes:
    skip: forward-only steps before each differentiable window.
  """

  skip: int = 0

  @property
  def steps_per_call(self) -> int:
    return self.window + self.skip

  @property
  def name(self) -> str:
    return "unrolled" if self.window == self.horizon else "truncated"

  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    del key  # deterministic given the state
    inner, episode, _ = self._restart(theta, state)
    problem, window, skip = self.problem, self.window, self.skip

    def member(s):
      s = jax.lax.stop_gradient(s)
      if skip:
        s, _ = problem.unroll(jax.lax.stop_gradient(theta), s, skip)

      def objective(th):
        s1, m = problem.unroll(th, s, window)
        return problem.meta_loss(th, s1), (s1, m)

      (loss, (s1, m)), g = jax.value_and_grad(objective, has_aux=True)(theta)
      return loss, g, s1, m

    loss, grads, inner, m = jax.vmap(member)(inner)
    ok = jnp.isfinite(loss) & jax.vmap(tree_isfinite)(grads)
    grad, n_ok = _masked_mean(grads, ok)
    metrics = _metrics(loss, ok, n_ok, m)
    return grad, state._replace(inner=inner, episode=episode,
                                diverged=~ok), metrics


def unrolled(problem: InnerProblem, num_steps: int, num_tasks: int = 1
             ) -> TruncatedBackprop:
  """Full unrolled backprop: each call is a fresh run of ``num_steps``."""
  return TruncatedBackprop(problem, horizon=num_steps, window=num_steps,
                           num_tasks=num_tasks)


def one_step_lookahead(problem: InnerProblem, horizon: int, every: int = 1,
                       num_tasks: int = 1) -> TruncatedBackprop:
  """A one-step look-ahead every ``every`` steps, after MLR-SNet's.

  The state before the step is treated as constant; the meta-loss is the
  validation (meta-set) loss after the step. Unlike the authors' code
  (:class:`OnlineLookahead`), the differentiated step is the real step, at
  the theta before the update, and episodes of ``horizon`` steps restart.
  """
  return TruncatedBackprop(problem, horizon=horizon, window=1,
                           skip=every - 1, num_tasks=num_tasks)


__all__ = ["AntitheticES", "Estimator", "EstimatorState", "OnlineLookahead",
           "PES", "TruncatedBackprop", "carry_controller_state",
           "one_step_lookahead", "tree_isfinite", "unrolled"]
