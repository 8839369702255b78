"""Apply a saved (meta-trained or RL-trained) controller, frozen, to a task.

  lrmeta evaluate --config configs/evaluate_transfer.py \\
      --config.controller=results/mlrsnet_fmnist/checkpoints/controller
  lrmeta evaluate --config configs/evaluate_transfer.py:small \\
      --config.controller=...   # minutes on a CPU

The default task is the transfer the MLR-SNet and RL papers report:
CIFAR-10 (the JPEG copy in ../shared; results are labelled as such) with a
small ResNet. Change `task.*` for other datasets, architectures, budgets or
label noise; the baselines are tuned on the same task, budget and seeds.
"""

import ml_collections

from lrmeta.experiments.config import task_config

VARIANTS = ("", "small", "tiny")


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.name = "evaluate_transfer"
  c.output_dir = "results/evaluate_transfer"
  c.controller = ""            # folder written by save_controller (required)
  c.seeds = (0, 1, 2)
  # Tune the controller's base rate over lr_grid like the baselines' peak
  # rate (controllers that set the rate themselves ignore it).
  c.tune_controller = False

  c.task = task_config("cifar10", "resnet8")
  c.task.num_val = 1000

  # Baselines: the same base optimizer, peak rate tuned on validation.
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"
  c.optimizer.momentum = 0.0
  c.optimizer.weight_decay = 5e-4
  # The baselines (lrmeta.protocol.DEFAULT_BASELINES), peak rate tuned.
  c.baselines = ("constant", "step", "cosine", "warmup_cosine", "linear",
                 "wsd")
  c.lr_grid = (0.03, 0.1, 0.3)

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 3.0
  c.train.eval_every = 200
  c.train.eval_examples = 0

  if variant == "small":
    c.output_dir = "results/evaluate_transfer_small"
    c.task.max_train = 5000
    c.train.epochs = 2.0
    c.train.eval_every = 40
    c.train.eval_examples = 1000
  elif variant == "tiny":
    # For tests: Fashion-MNIST, a few steps.
    c.output_dir = "results/evaluate_transfer_tiny"
    c.task = task_config("fashion_mnist", "small_cnn")
    c.task.max_train = 1000
    c.task.num_val = 200
    c.task.batch_size = 32
    c.seeds = (0,)
    c.lr_grid = (0.1,)
    c.baselines = ("cosine", "wsd")  # two of the six, for time
    c.train.epochs = 0.5
    c.train.eval_every = 8
    c.train.eval_examples = 200
  elif variant not in (None, ""):
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
  return c
