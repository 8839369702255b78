"""MLR-SNet's own meta-training: a virtual one-step look-ahead, theta online.

:class:`OnlineLookahead` is the meta-gradient estimator of the MLR-SNet
authors' protocol (``meta-train/image-classification/meta_train.py``): one
long run per member, a first-order look-ahead every ``every`` minibatches,
and the real step taken after ``theta`` is updated.
:func:`carry_controller_state` hands the LSTM state of the virtual step on
to the real one, as their code does. The estimator satisfies the
:class:`~lrmeta.meta.estimators.Estimator` protocol;
:mod:`lrmeta.meta.estimators` lists it with the others.

References:
  Shu et al., "MLR-SNet", TPAMI 2022 (one-step lookahead meta-update).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lrmeta.controllers.mlr_snet import MLRSNetState
from lrmeta.meta.estimator_base import (EstimatorState, Theta, _Estimator,
                                        _masked_mean, _metrics, tree_isfinite)


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
  clipping), the real step after it. Unlike
  :func:`~lrmeta.meta.estimators.one_step_lookahead`, the real step is not
  the differentiated one and runs at the updated ``theta``.

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


__all__ = ["OnlineLookahead", "carry_controller_state"]
