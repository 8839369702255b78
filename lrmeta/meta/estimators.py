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

References:
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled
  Computation Graphs with Persistent Evolution Strategies", ICML 2021.
  Salimans et al., "Evolution Strategies as a Scalable Alternative to
  Reinforcement Learning", 2017 (antithetic sampling).
  Shu et al., "MLR-SNet", TPAMI 2022 (one-step lookahead meta-update).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from lrmeta.controllers.mlr_snet import MLRSNetState
from lrmeta.meta.problem import InnerProblem

Theta = Any


class EstimatorState(NamedTuple):
  """Population state of an estimator.

  Attributes:
    inner: inner runs, leading axis ``[P]`` (``[P, 2N]`` for PES: the
      ``+`` runs of the N pairs, then the ``-`` runs).
    keys: ``[P]`` base keys; episode ``e`` of member ``p`` starts from
      ``fold_in(keys[p], e)``.
    episode: ``[P]`` int32 episodes started so far.
    accum: PES perturbation sums ``[P, N, ...theta]`` (``()`` otherwise).
    diverged: ``[P]`` bool, the member's last estimate was not finite (it
      restarts at the next call).
  """

  inner: Any
  keys: jax.Array
  episode: jax.Array
  accum: Any
  diverged: jax.Array


@runtime_checkable
class Estimator(Protocol):
  """A meta-gradient estimator, as the outer loop uses it.

  :class:`~lrmeta.meta.outer.MetaTrainer` calls only these two methods; both
  are pure and traceable, so ``estimate`` runs under ``jax.jit``. The state
  is a pytree the outer loop carries and checkpoints without reading it.
  """

  def init(self, theta: Theta, key: jax.Array) -> EstimatorState:
    """The estimator's state before the first call.

    Args:
      theta: meta-parameters (any pytree).
      key: PRNG key of the estimator's inner runs.

    Returns:
      The initial :class:`EstimatorState`.
    """

  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    """One meta-gradient estimate.

    Args:
      theta: meta-parameters (any pytree).
      state: the state returned by the previous call (or by ``init``).
      key: PRNG key of this call (unused by deterministic estimators).

    Returns:
      ``(meta_grad, state, metrics)``: ``meta_grad`` has the structure of
      ``theta``; ``metrics`` holds scalars, at least ``"meta_loss"``,
      ``"diverged"`` and ``"num_ok"`` (members in the average; the outer
      loop leaves out an estimator whose ``num_ok`` is 0).
    """


def tree_isfinite(tree: Any) -> jax.Array:
  """True when every floating leaf of ``tree`` is finite."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.result_type(x), jnp.floating)]
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack(leaves))


def _where(pred, a, b):
  """Tree select with a scalar (or leading-axis) predicate."""
  def sel(x, y):
    p = jnp.reshape(pred, jnp.shape(pred) + (1,) * (x.ndim - jnp.ndim(pred)))
    return jnp.where(p, x, y)
  return jax.tree.map(sel, a, b)


def _masked_mean(values: Any, ok: jax.Array) -> tuple[Any, jax.Array]:
  """Mean over the leading axis of the entries where ``ok``; 0 if none."""
  n = jnp.sum(ok)
  denom = jnp.maximum(n, 1).astype(jnp.float32)
  mean = jax.tree.map(
      lambda v: jnp.sum(_where(ok, v, jnp.zeros_like(v)), 0) / denom, values)
  return mean, n


def _normal_like(key: jax.Array, theta: Theta, n: int) -> Theta:
  """``n`` standard normal draws shaped like ``theta``, stacked on axis 0."""
  leaves, treedef = jax.tree.flatten(theta)
  keys = jax.random.split(key, len(leaves))
  return treedef.unflatten([
      jax.random.normal(k, (n,) + jnp.shape(x), jnp.result_type(x))
      for k, x in zip(keys, leaves)])


@dataclasses.dataclass(frozen=True)
class _Estimator(abc.ABC):
  """Configuration and episode bookkeeping shared by the estimators here.

  Attributes:
    problem: the inner problem to unroll.
    horizon: inner steps per episode.
    window: inner steps differentiated (or perturbed) per call (``None``:
      ``horizon``, one whole run per call).
    num_tasks: members ``P`` of the vmapped population.
  """

  problem: InnerProblem
  horizon: int
  window: int | None = None
  num_tasks: int = 1

  def __post_init__(self):
    if self.window is None:
      object.__setattr__(self, "window", self.horizon)
    if self.horizon <= 0 or self.window <= 0 or self.num_tasks <= 0:
      raise ValueError(f"horizon, window and num_tasks must be positive, got "
                       f"{self.horizon}, {self.window}, {self.num_tasks}")
    if self.horizon % self.steps_per_call:
      raise ValueError(f"horizon {self.horizon} must be a multiple of the "
                       f"steps per call {self.steps_per_call}")

  @property
  def steps_per_call(self) -> int:
    return self.window

  @property
  def name(self) -> str:
    return type(self).__name__

  def _fresh(self, theta, keys, episode):
    return jax.vmap(lambda k, e: self.problem.init(
        theta, jax.random.fold_in(k, e)))(keys, episode)

  def _restart(self, theta, state: EstimatorState):
    """Restarts members whose episode ended or whose last estimate diverged."""
    steps = jax.vmap(self.problem.step_of)(state.inner)
    done = (steps >= self.horizon) | state.diverged
    episode = state.episode + done.astype(jnp.int32)
    fresh = self._fresh(jax.lax.stop_gradient(theta), state.keys, episode)
    inner = _where(done, fresh, state.inner)
    return inner, episode, done

  def init(self, theta: Theta, key: jax.Array) -> EstimatorState:
    """``num_tasks`` fresh inner runs, seeded from ``split(key)``."""
    keys = jax.random.split(key, self.num_tasks)
    episode = jnp.zeros((self.num_tasks,), jnp.int32)
    return EstimatorState(self._fresh(theta, keys, episode), keys, episode, (),
                          jnp.zeros((self.num_tasks,), bool))

  @abc.abstractmethod
  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    """One meta-gradient estimate (see :meth:`Estimator.estimate`)."""


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


def _metrics(loss, ok, n_ok, step_metrics):
  mean_loss, _ = _masked_mean(loss, ok)
  out = {"meta_loss": mean_loss, "diverged": jnp.sum(~ok),
         "num_ok": n_ok}
  if isinstance(step_metrics, dict) and "train_loss" in step_metrics:
    out["train_loss"] = jnp.nanmean(step_metrics["train_loss"])
  return out


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


def carry_controller_state(inner: Any, virtual: Any) -> Any:
  """``inner`` with the MLR-SNet LSTM state ``(h, c)`` of ``virtual``.

  The authors' meta-training calls the net once in the virtual look-ahead
  step and again, on the same loss, in the real step, and the LSTM keeps the
  state of the first call (``meta-train/image-classification/meta_train.py``
  lines 102 and 128): the real step starts from the look-ahead's state.
  Identity for states that hold no :class:`MLRSNetState`.
  """
  is_mlr = lambda x: isinstance(x, MLRSNetState)

  def pick(a, b):
    return a._replace(h=b.h, c=b.c) if is_mlr(a) else a

  return jax.tree.map(pick, inner, virtual, is_leaf=is_mlr)


@dataclasses.dataclass(frozen=True)
class OnlineLookahead(_Estimator):
  """The authors' meta-training protocol: one long run, ``theta`` online.

  Each call advances every member's run, forward only and with the current
  ``theta``, to its next look-ahead point, then differentiates a *virtual*
  SGD step from there: the meta-loss is ``problem.meta_loss`` after one
  step of ``problem.unroll`` on the same minibatch the real step will use,
  with the state before it held constant (first order). The outer loop
  updates ``theta`` from that gradient, and the next call's first real step,
  on that same minibatch, uses the updated ``theta``. This is
  ``meta-train/image-classification/meta_train.py`` lines 84-143: a
  look-ahead at the minibatches ``i`` with ``(i + 1) % t_val == 0``
  (``t_val`` = ``every``, 300 by default), Adam on the net
  (:func:`lrmeta.meta.default_meta_optimizer`: lr 1e-3, L2 1e-4, no
  clipping), the real step after it. Unlike :func:`one_step_lookahead`, the
  real step is not the differentiated one and runs at the updated ``theta``.

  The authors' minibatch index ``i`` restarts every epoch, so with 383
  minibatches per epoch (CIFAR-10 less the meta set, batch 128) their
  look-ahead runs once per epoch, at its 300th minibatch; pass
  ``steps_per_epoch`` to count ``every`` within epochs the same way
  (``None``: along the whole run).

  Options the authors' code fixes and lrmeta names:

  * ``carry_lstm_state`` (True, theirs): the real step starts from the LSTM
    state the virtual step left (:func:`carry_controller_state`).
  * The meta-loss's model mode and meta set are the problem's
    (:class:`~lrmeta.meta.TaskProblem`: ``meta_train_mode=True`` and a
    class-balanced validation split of 1,000 for theirs).

  ``horizon`` is the length of the one run (e.g. 200 epochs); a member that
  reaches it (or diverges) starts a new run.

  Attributes:
    every: look-ahead period ``t_val`` in minibatches.
    steps_per_epoch: count ``every`` within epochs of this many steps.
    carry_lstm_state: see above.
  """

  every: int = 300
  steps_per_epoch: int | None = None
  carry_lstm_state: bool = True

  @property
  def steps_per_call(self) -> int:
    return 1  # calls advance to the next look-ahead point, any horizon

  @property
  def name(self) -> str:
    return "online_lookahead"

  def _position(self, step):
    return step % self.steps_per_epoch if self.steps_per_epoch else step

  def estimate(self, theta: Theta, state: EstimatorState, key: jax.Array
               ) -> tuple[Theta, EstimatorState, dict[str, jax.Array]]:
    del key
    if self.every <= 0:
      raise ValueError(f"every must be positive, got {self.every}")
    inner, episode, _ = self._restart(theta, state)
    problem, frozen = self.problem, jax.lax.stop_gradient(theta)

    def advance(s):
      started = problem.step_of(s) > 0  # sits at the last look-ahead point

      def cond(carry):
        s, n = carry
        at_point = (self._position(problem.step_of(s)) + 1) % self.every == 0
        return ((n == 0) & started) | ~at_point

      def body(carry):
        s, n = carry
        return problem.unroll(frozen, s, 1)[0], n + 1

      return jax.lax.while_loop(cond, body, (s, jnp.zeros((), jnp.int32)))

    def member(s):
      s, n = advance(jax.lax.stop_gradient(s))

      def objective(th):
        s1, m = problem.unroll(th, s, 1)
        return problem.meta_loss(th, s1), (s1, m)

      (loss, (s1, m)), g = jax.value_and_grad(objective, has_aux=True)(theta)
      if self.carry_lstm_state:
        s = carry_controller_state(s, jax.lax.stop_gradient(s1))
      return loss, g, s, m, n

    loss, grads, inner, m, n = jax.vmap(member)(inner)
    ok = jnp.isfinite(loss) & jax.vmap(tree_isfinite)(grads)
    grad, n_ok = _masked_mean(grads, ok)
    metrics = _metrics(loss, ok, n_ok, m)
    metrics["real_steps"] = jnp.mean(n.astype(jnp.float32))
    return grad, state._replace(inner=inner, episode=episode,
                                diverged=~ok), metrics


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
      eps = _normal_like(k, theta, n)
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


__all__ = ["AntitheticES", "Estimator", "EstimatorState", "OnlineLookahead",
           "PES", "TruncatedBackprop", "carry_controller_state",
           "one_step_lookahead", "tree_isfinite", "unrolled"]
