"""LRBench on Fashion-MNIST / small CNN: select, compose, verify vs fixed LR.

  lrmeta select --config configs/lrbench_fashion_mnist.py          # 1500 steps
  lrmeta select --config configs/lrbench_fashion_mnist.py:small    # 300 steps
"""

import ml_collections

from lrmeta.experiments.config import task_config
from lrmeta.experiments.jobs.select import selection_config

SMALL_CANDIDATES = ("fix-0.01", "fix-0.1", "step", "exp", "poly", "cos",
                    "tri2", "dtri", "sgdr", "onecycle")


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.name = "lrbench_fashion_mnist"
  c.output_dir = "results/lrbench"

  c.task = task_config("fashion_mnist", "small_cnn")

  # Selection settings: the fields of lrmeta.schedules.select.SelectionConfig.
  c.selection = selection_config()
  c.selection.budget = 1500
  c.selection.stage_fractions = (1 / 3, 2 / 3)
  c.selection.eval_examples = 5000
  # The default: the fixed rate of a framework's SGD out of the box
  # (Keras / TF ``SGD()``: learning_rate=0.01, momentum=0), as LRBench
  # compares against frameworks' default policies. Candidates use the same
  # optimizer (plain SGD), so only the LR policy differs.
  c.selection.default = "fix(k0=0.01)"
  c.selection.momentum = 0.0
  # Candidate keys from lrmeta.schedules.select.default_candidates; () keeps
  # all sixteen.
  c.candidates = ()

  if variant == "small":
    c.output_dir = "results/lrbench_small"
    c.task.batch_size = 64
    c.task.max_train = 20000
    c.selection.budget = 300
    c.selection.eval_every = 25
    c.selection.eval_examples = 2000
    c.candidates = SMALL_CANDIDATES
  elif variant not in (None, ""):
    raise ValueError(f"unknown variant {variant!r}; use '' or 'small'")
  return c
