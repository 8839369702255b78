"""Evolution-strategies meta-gradient estimators: antithetic ES and PES.

:class:`AntitheticES` perturbs ``theta`` afresh over each window;
:class:`PES` keeps each pair's perturbed inner runs and the sum of its
perturbations since the episode start, which makes the sum of its estimates
over an episode unbiased for the Gaussian-smoothed episode objective. Both
share one antithetic core (``_Antithetic``: sample the pairs, run the ``+``
and ``-`` members, mask non-finite pairs, combine) and satisfy the
:class:`~lrmeta.meta.estimators.Estimator` protocol;
:mod:`lrmeta.meta.estimators` lists them with the others.

References:
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled
  Computation Graphs with Persistent Evolution Strategies", ICML 2021.
  Salimans et al., "Evolution Strategies as a Scalable Alternative to
  Reinforcement Learning", 2017 (antithetic sampling).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lrmeta.meta.estimator_base import (EstimatorState, Theta, _Estimator,
                                        _masked_mean, _metrics, _where)
from lrmeta.meta.noise import normal_like


@dataclasses.dataclass(frozen=True)
class _Antithetic(_Estimator):
  """The antithetic core shared by :class:`AntitheticES` and :class:`PES`.

  In each call every member draws ``N`` perturbations
  :math:`\\epsilon_i \\sim \\mathcal N(0, I)`, runs the window with
  :math:`\\theta + \\sigma \\epsilon_i` and :math:`\\theta - \\sigma
  \\epsilon_i` (``2N`` runs, vmapped, the same minibatches) and combines the
  pairs whose loss difference is finite (the set :math:`O`):

  .. math::

    \\hat g = \\frac{1}{2 \\sigma |O|} \\sum_{i \\in O}
      \\left[L^{+i} - L^{-i}\\right] d_i ,

  with direction :math:`d_i = \\epsilon_i` (ES) or the PES sum
  :math:`\\xi_i`. The estimate is the mean of :math:`\\hat g` over members
  with at least one finite pair. Subclasses say where the runs continue
  (:meth:`_next_inner`).

  Attributes:
    num_pairs: antithetic pairs ``N``.
    sigma: perturbation scale.
  """

  num_pairs: int = 8
  sigma: float = 0.01

  @abc.abstractmethod
  def _next_inner(self, theta: Theta, start: Any, ends: Any) -> Any:
    """A member's inner runs after the call.

    Args:
      theta: the unperturbed meta-parameters.
      start: the member's runs at the window start.
      ends: its ``2N`` runs at the window end (``+`` runs, then ``-``).

    Returns:
      The runs to carry to the next call, in the layout of ``start``.
    """

  def _antithetic(self, theta: Theta, inner: Any, accum: Theta | None,
                  key: jax.Array
                  ) -> tuple[Theta, Any, Theta | None, jax.Array,
                             dict[str, jax.Array]]:
    """Antithetic estimate over one window of every member.

    Args:
      theta: meta-parameters.
      inner: ``[P, ...]`` runs, each the common start of its member's pairs
        (``accum is None``), or ``[P, 2N, ...]`` one persistent run per
        perturbed member (PES layout).
      accum: ``None`` (the direction is this call's perturbation), or the
        PES sums ``[P, N, ...theta]`` before this call: this call's
        perturbations are added and the sums are the directions.
      key: PRNG key of the call; member ``p`` draws from ``fold_in(key, p)``.

    Returns:
      ``(grad, inner, accum, diverged, metrics)``: the estimate, the runs
      from :meth:`_next_inner`, the updated sums (``None`` if ``accum`` is),
      ``[P]`` members with at least one non-finite pair, and the metrics
      (``diverged_pairs`` counts non-finite pairs).
    """
    problem, window, n, sigma = (self.problem, self.window, self.num_pairs,
                                 self.sigma)
    shared_start = accum is None
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(
        jnp.arange(self.num_tasks))

    def member(s, xi, k):
      eps = normal_like(k, theta, n)
      direction = eps if xi is None else jax.tree.map(jnp.add, xi, eps)
      thetas = jax.tree.map(lambda t, e: jnp.concatenate(
          [t + sigma * e, t - sigma * e]), theta, eps)

      def run(th, si):
        s1, m = problem.unroll(th, si, window)
        return problem.meta_loss(th, s1), s1, m

      losses, ends, m = jax.vmap(run, in_axes=(0, None if shared_start else 0)
                                 )(thetas, s)
      diff = losses[:n] - losses[n:]
      ok = jnp.isfinite(diff)
      g, n_ok = _masked_mean(
          jax.tree.map(lambda d: d * diff.reshape((n,) + (1,) * (d.ndim - 1)),
                       direction), ok)
      # _masked_mean divides by n_ok; the estimator divides by 2 sigma N.
      g = jax.tree.map(lambda x: x / (2 * sigma), g)
      mean_loss = 0.5 * (losses[:n] + losses[n:])
      return (g, n_ok, mean_loss, ok, self._next_inner(theta, s, ends),
              None if xi is None else direction, m)

    g, n_ok, mean_loss, ok, inner, accum, m = jax.vmap(member)(
        inner, accum, keys)
    member_ok = n_ok > 0
    grad, n_members = _masked_mean(g, member_ok)
    loss, _ = jax.vmap(_masked_mean)(mean_loss, ok)
    metrics = _metrics(loss, member_ok, n_members, m)
    diverged = ~jnp.all(ok, axis=1)
    metrics["diverged"] = jnp.sum(diverged)
    metrics["diverged_pairs"] = jnp.sum(~ok)
    return grad, inner, accum, diverged, metrics


@dataclasses.dataclass(frozen=True)
class AntitheticES(_Antithetic):
  """Antithetic ES over each window, ``num_pairs`` pairs vmapped.

  .. math::

    \\hat g = \\frac{1}{2 \\sigma N} \\sum_{i=1}^N
      \\left[L(\\theta + \\sigma \\epsilon_i) - L(\\theta - \\sigma \\epsilon_i)
      \\right] \\epsilon_i, \\qquad \\epsilon_i \\sim \\mathcal N(0, I).

  Both members of a pair start from the same inner state and see the same
  minibatches. For ``window < horizon`` the shared run is then advanced with
  the unperturbed ``theta`` (one extra forward window).

  Attributes:
    num_pairs: antithetic pairs ``N``.
    sigma: perturbation scale.

  References:
    Salimans et al., "Evolution Strategies as a Scalable Alternative to
    Reinforcement Learning", 2017.
  """

  @property
  def name(self) -> str:
    return "es"

  def _next_inner(self, theta, start, ends):
    if self.window < self.horizon:
      return self.problem.unroll(theta, start, self.window)[0]
    return jax.tree.map(lambda x: x[0], ends)  # episode over: restarts next

  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    inner, episode, _ = self._restart(theta, state)
    grad, inner, _, diverged, metrics = self._antithetic(theta, inner, None,
                                                         key)
    return grad, state._replace(inner=inner, episode=episode,
                                diverged=diverged), metrics


@dataclasses.dataclass(frozen=True)
class PES(_Antithetic):
  """Persistent evolution strategies (antithetic), ``num_pairs`` vmapped.

  Each pair ``i`` keeps two persistent inner runs, unrolled with
  ``theta + sigma eps_i^k`` and ``theta - sigma eps_i^k`` in truncation
  ``k``, and the sum ``xi_i = sum_{j<=k} eps_i^j`` since its episode began:

  .. math::

    \\hat g_k = \\frac{1}{2 \\sigma N} \\sum_{i=1}^N
      \\left[L_k^{+i} - L_k^{-i}\\right] \\xi_i .

  The sum of :math:`\\hat g_k` over an episode is an unbiased estimate of
  the gradient of the Gaussian-smoothed sum of per-truncation meta-losses.

  Attributes:
    num_pairs: antithetic pairs ``N``.
    sigma: perturbation scale.

  References:
    Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled
    Computation Graphs with Persistent Evolution Strategies", ICML 2021.
  """

  @property
  def name(self) -> str:
    return "pes"

  def init(self, theta: Theta, key: jax.Array) -> EstimatorState:
    """Fresh runs in the ``[P, 2N]`` pair layout and zero sums."""
    base = super().init(theta, key)
    inner = self._pairs(base.inner)
    accum = jax.tree.map(
        lambda t: jnp.zeros((self.num_tasks, self.num_pairs) + jnp.shape(t),
                            jnp.result_type(t)), theta)
    return base._replace(inner=inner, accum=accum)

  def _pairs(self, inner):
    """Broadcasts ``[P, ...]`` runs to the ``[P, 2N, ...]`` pair layout."""
    return jax.tree.map(
        lambda x: jnp.broadcast_to(x[:, None], (x.shape[0], 2 * self.num_pairs)
                                   + x.shape[1:]), inner)

  def _restart(self, theta, state):
    steps = jax.vmap(jax.vmap(self.problem.step_of))(state.inner)[:, 0]
    done = (steps >= self.horizon) | state.diverged
    episode = state.episode + done.astype(jnp.int32)
    fresh = self._pairs(self._fresh(jax.lax.stop_gradient(theta),
                                    state.keys, episode))
    inner = _where(done, fresh, state.inner)
    accum = _where(done, jax.tree.map(jnp.zeros_like, state.accum),
                   state.accum)
    return inner, accum, episode

  def _next_inner(self, theta, start, ends):
    del theta, start  # every perturbed run persists
    return ends

  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    inner, accum, episode = self._restart(theta, state)
    grad, inner, accum, diverged, metrics = self._antithetic(theta, inner,
                                                             accum, key)
    return grad, state._replace(inner=inner, episode=episode, accum=accum,
                                diverged=diverged), metrics


__all__ = ["AntitheticES", "PES"]
