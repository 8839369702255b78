"""Apply a saved (meta-trained or RL-trained) controller, frozen, to a task.

  lrmeta evaluate --config configs/evaluate_transfer.py \\
      --config.controller=results/mlrsnet_fmnist/checkpoints/controller
  lrmeta evaluate --config configs/evaluate_transfer.py:small \\
      --config.controller=...   # minutes on a CPU
  lrmeta evaluate --config configs/evaluate_transfer.py:published_fmnist \\
      --config.controller=results/mlrsnet_published   # MLR-SNet's nets

The default task is the transfer the MLR-SNet and RL papers report:
CIFAR-10 (the JPEG copy in ../shared; results are labelled as such) with a
small ResNet. The tasks are the sections of ``transfer`` (the schema every
transfer shares, lrmeta.experiments.transfer): change ``transfer.task.*``
for another dataset, architecture or budget, or add sections; the baselines
are tuned on the same task, budget and seeds.
"""

import ml_collections

from lrmeta.experiments.config import transfer_section

VARIANTS = ("", "small", "tiny", "published_fmnist", "published_cifar")

# The paired comparison of a frozen controller at CPU scale: ten test seeds,
# one tune seed, three rates, and cosine beside the two strongest decays.
_TEST_SEEDS = tuple(range(10))
_STRONG = ("cosine", "linear", "wsd")


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
  elif variant in ("published_fmnist", "published_cifar"):
    # The transfer test of docs/results/mlr_snet.md at CPU scale (2 cores):
    # a frozen controller (e.g. the authors' published MLR-SNet, imported
    # by scripts/import_mlrsnet.py) on the small CNN on full Fashion-MNIST
    # or on ResNet-8 on 5,000 CIFAR-10 (JPEG copy) images, against cosine,
    # linear decay and WSD, 10 paired test seeds.
    c.output_dir = f"results/evaluate_{variant}"
    t.tune_seeds, t.test_seeds = (1000,), _TEST_SEEDS
    t.baselines = _STRONG
    t.eval_every = 0  # one evaluation, on the whole test split, at the end
    t.eval_examples = 0
    if variant == "published_fmnist":
      t.dataset, t.model = "fashion_mnist", "small_cnn"
      t.num_val = 5000  # 55,000 training images
      t.steps = 60  # 0.14 epoch of batch 128
      t.lr_grid = (0.1, 0.2, 0.4)  # cosine tuned to 0.2 at 430 steps
    else:
      t.max_train = 5000
      t.batch_size = 64
      t.steps = 40  # half an epoch of 5,000 images
      t.lr_grid = (0.3, 1.0, 3.0)  # cosine tuned to 1.0-3.0 at batch 64
      t.eval_examples = 2000  # test and validation images per evaluation
  elif variant not in (None, ""):
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
  return c
