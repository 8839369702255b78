"""Learned controllers: one protocol, one store.

A learned controller is a controller whose behaviour is set by trained
meta-parameters ``theta`` (an LSTM's weights, an RL actor's weights). Each
kind implements :class:`LearnedController` (initialise ``theta``, build the
Optax transformation for a budget, name the training-loop signals it needs)
and registers itself under its name; :func:`save` writes ``theta`` with a
JSON config naming the kind, and :func:`frozen` rebuilds a saved controller
for any task and budget. Every job, ``lrmeta evaluate``, ``lrmeta train``'s
``ckpt:PATH`` methods and the notebooks go through :func:`frozen`.

Kinds registered here: ``mlr_snet`` (:mod:`lrmeta.learned.mlr_snet`),
``rl_policy`` (:mod:`lrmeta.learned.rl_policy`), ``hypergradient``
(HD's two rates, :mod:`lrmeta.learned.hypergradient`) and
``learned_schedule`` (knots plus loss feedback,
:mod:`lrmeta.learned.learned_schedule`).
"""

from lrmeta.learned.base import (Frozen, LearnedController, SavedController,
                                 frozen, get, kinds, load, register, save)
# Importing a kind's module registers it.
from lrmeta.learned import (hypergradient, learned_schedule, mlr_snet,
                            rl_policy)

__all__ = ["Frozen", "LearnedController", "SavedController", "frozen", "get",
           "hypergradient", "kinds", "learned_schedule", "load", "mlr_snet",
           "register", "rl_policy", "save"]
