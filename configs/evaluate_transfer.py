"""Apply a saved (meta-trained or RL-trained) controller, frozen, to a task.

  lrmeta evaluate --config configs/evaluate_transfer.py \\
      --config.controller=results/mlrsnet_fmnist/checkpoints/controller
  lrmeta evaluate --config configs/evaluate_transfer.py:small \\
      --config.controller=...   # minutes on a CPU

The default task is the transfer the MLR-SNet and RL papers report:
CIFAR-10 (the JPEG copy in ../shared; results are labelled as such) with a
small ResNet. The tasks are the sections of ``transfer`` (the schema every
transfer shares, lrmeta.experiments.transfer): change ``transfer.task.*``
for another dataset, architecture or budget, or add sections; the baselines
are tuned on the same task, budget and seeds.
"""

import ml_collections

from lrmeta.experiments.config import transfer_section

VARIANTS = ("", "small", "tiny")


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.name = "evaluate_transfer"
  c.output_dir = "results/evaluate_transfer"
  c.controller = ""            # folder written by save_controller (required)
  # Tune the controller's base rate over lr_grid like the baselines' peak
  # rate (controllers that set the rate themselves ignore it).
  c.tune_controller = False

  # Baselines: the same base optimizer, peak rate tuned on validation.
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"
  c.optimizer.momentum = 0.0
  c.optimizer.weight_decay = 5e-4

  # The task: 3 epochs of the 49,000 training images (1,000 held out for
  # validation), test seeds 0-2, tune seeds disjoint from them; the
  # baselines of lrmeta.protocol.DEFAULT_BASELINES (baselines=()).
  c.transfer = ml_collections.ConfigDict()
  c.transfer.enabled = True
  c.transfer.tasks = ("task",)
  c.transfer.task = transfer_section(
      "cifar10", "resnet8", 128, 1148, (0.03, 0.1, 0.3), 1000,
      tune_seeds=(1002, 1003, 1004), test_seeds=(0, 1, 2), eval_every=200,
      executor="population")

  t = c.transfer.task
  if variant == "small":
    c.output_dir = "results/evaluate_transfer_small"
    t.max_train = 5000
    t.steps = 78  # 2 epochs of 5,000 images
    t.eval_every = 40
    t.eval_examples = 1000
  elif variant == "tiny":
    # For tests: Fashion-MNIST, a few steps.
    c.output_dir = "results/evaluate_transfer_tiny"
    t.dataset, t.model = "fashion_mnist", "small_cnn"
    t.max_train = 1000
    t.num_val = 200
    t.batch_size = 32
    t.steps = 16  # half an epoch
    t.tune_seeds, t.test_seeds = (1000,), (0,)
    t.lr_grid = (0.1,)
    t.baselines = ("cosine", "wsd")  # two of the six, for time
    t.eval_every = 8
    t.eval_examples = 200
  elif variant not in (None, ""):
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
  return c
