"""The learned schedule (knots over the budget + bounded loss feedback)
meta-trained on the task family by whole-run ES, judged on held-out
instances.

  lrmeta meta-train --config configs/learned_lr.py          # GPU-sized
  lrmeta meta-train --config configs/learned_lr.py:small    # 2 CPU cores
  lrmeta meta-train --config configs/learned_lr.py:debug    # seconds (tests)
  lrmeta meta-train --config configs/learned_lr.py:small_fmnist  # no CIFAR-10
  lrmeta meta-train --config configs/learned_lr.py:small_adam    # on Adam
  lrmeta meta-train --config configs/learned_lr.py:small_adam_aware  # + context

The controller (``lrmeta.controllers.learned_schedule``) sets
``log lr_t = log lr_base + s(t/T) + r(features_t)`` on SGD with momentum 0.9:
``s`` piecewise linear over ``controller.num_knots`` knots, ``r`` a tanh MLP
of three scale-free loss features bounded by a factor e either way; both
start at zero, so the untrained controller is constant SGD at ``lr_base``
(0.05, the fitness reference: the untrained meta-objective is exactly 1).
49 meta-parameters with 8 knots. Everything else (family, ES, held-out
protocol) is ``configs/family_es.py``'s; ``scripts/reproduce_learned_lr.py``
runs the staged meta-training (knots first, then knots and feedback), the
ablations and the transfers. ``small_fmnist`` is ``small`` without CIFAR-10
(Fashion-MNIST family sources only, transfer to the small CNN only).
``small_adam`` is ``small`` with Adam (optax's defaults) as the base
optimizer and ``lr_base`` 0.002; its fitness reference stays constant SGD
0.05 (a normaliser only: the untrained objective is then not 1), and the
held-out protocol's baselines stay on SGD, so judge it against Adam's hand
schedules with ``scripts/pretrained_card.py``.
``small_adam_aware`` conditions that schedule on its run's context
(``controller.context``: log budget, log parameter count and the log-loss
change over the first ``controller.window_fraction`` of the budget;
:mod:`lrmeta.controllers.context_schedule`): it starts from the shipped
``learned_schedule_adam`` (``controller.init_from``) with the 27 context
weights at zero and perturbs those alone (``meta.perturb``, ES sigma 0.3),
for ``meta.meta_steps`` meta-steps; shipped as ``learned_schedule_adam_aware``.
"""

import importlib.util
import pathlib

VARIANTS = ("", "small", "debug", "small_fmnist", "small_adam",
            "small_adam_aware")


def _family_es():
  path = pathlib.Path(__file__).with_name("family_es.py")
  spec = importlib.util.spec_from_file_location("family_es_base", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(variant=None):
  if variant not in (None, *VARIANTS):
    raise ValueError(f"unknown variant {variant!r}; choose one of "
                     f"{VARIANTS}")
  adam = variant in ("small_adam", "small_adam_aware")
  c = _family_es().get_config("small" if adam else variant)
  c.name = "learned_lr"
  c.output_dir = c.output_dir.replace("family_es", "learned_lr")
  c.controller.name = "learned_schedule"
  c.controller.momentum = 0.9
  c.controller.base_lr = 0.05
  c.controller.num_knots = 8
  c.controller.feedback = True
  c.meta.es_sigma = 0.1  # log units for the knots
  c.meta.lr = 0.03
  c.controller.optimizer = "sgd"  # base optimizer: "sgd" or "adam"
  c.controller.context = False  # condition on budget and an early window
  c.controller.window_fraction = 0.1  # context: the observed share
  c.controller.init_from = ""  # "pretrained:NAME": start from its theta
  if adam:
    c.output_dir = c.output_dir.replace("_small", f"_{variant}")
    c.controller.optimizer = "adam"
    c.controller.base_lr = 0.002
  if variant == "small_adam_aware":
    c.controller.context = True
    c.controller.init_from = "pretrained:learned_schedule_adam"
    c.meta.perturb = "context"
    c.meta.es_sigma = 0.3  # 0.1 gave a weaker signal on the context
  return c
