"""A learned controller meta-trained on the task family by whole-run ES,
then judged on held-out family instances.

  lrmeta meta-train --config configs/family_es.py          # GPU-sized
  lrmeta meta-train --config configs/family_es.py:small    # 2 CPU cores
  lrmeta meta-train --config configs/family_es.py:debug    # seconds (tests)
  lrmeta meta-train --config configs/family_es.py:small_fmnist  # no CIFAR-10
  lrmeta meta-train --config configs/family_es.py:small --config.controller.name=hypergradient

The family (``lrmeta.tasks.family``): Fashion-MNIST average-pooled to 7x7 and
14x14 and the CIFAR-10 JPEG copy in grayscale 8x8, MLPs of 1-2 hidden layers
of width 16/32/64, batch 32/64/128, budgets of 100/200/400 steps, label noise
0/0.2/0.5, all or 10,000 training images. Meta-training draws its instances
from ``family.train_shapes`` shapes (fresh run seeds every meta-step);
evaluation uses the family's held-out instances (unseen seeds, and
width/budget combinations never sampled).

Each meta-step scores ``meta.es_pairs`` antithetic pairs of whole runs, each
pair on its own instance, by the final loss over 2,000 validation images
divided by the same run's loss under constant SGD (rate 0.05, momentum 0.9).
``meta.es_sigma`` is in the meta-parameters' units (log units for HD's
rates). ``meta.perturb`` restricts ES to some parameter groups, key paths
with ``/`` between levels (e.g. ``out``, MLR-SNet's output layer; empty:
all).

Controllers (``controller.name``): ``mlr_snet`` (the authors' LSTM cell,
11,776 weights at hidden 50 and the default width hidden // 2; 23,101 at
``controller.width=50``, lrmeta's earlier cell; plain SGD as in the paper's
code), ``hypergradient`` (HD's
initial rate and hypergradient rate, in log units; use
``controller.momentum=0.9``) and ``learned_schedule`` (``lr_base`` times
``exp`` of K log-rate knots over the budget plus a bounded feedback MLP of
scale-free loss features, 49 parameters; ``configs/learned_lr.py`` holds
its tuned settings).
"""

import ml_collections

from lrmeta.experiments.config import (family_transfer_config,
                                      fashion_mnist_only)

VARIANTS = ("", "small", "debug", "small_fmnist")


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.name = "family_es"
  c.output_dir = "results/family_es"
  c.kind = "family"  # meta-train on the task family ("task": on one task)
  c.seed = 0  # meta-training seed: theta's initialisation and ES noise

  c.family = ml_collections.ConfigDict()
  c.family.sources = ("fashion_mnist:7", "fashion_mnist:14", "cifar10:8")
  c.family.num_steps = (100, 200, 400)
  c.family.train_shapes = 16  # shapes meta-training draws instances from
  c.family.shapes_seed = 0
  c.family.held_out_seeds = 2  # used by the family's held-out list

  c.controller = ml_collections.ConfigDict()
  c.controller.name = "mlr_snet"
  c.controller.hidden = 50  # mlr_snet
  c.controller.width = 0  # gate-MLP width; 0: hidden // 2 (the authors')
  c.controller.semantics = "meta_test"  # or "meta_train" (module.py's cell)
  c.controller.init = "torch"  # PyTorch's default; or "uniform"
  c.controller.gamma = 0.0  # mlr_snet; 0: from the first loss (the paper)
  c.controller.momentum = 0.0  # base SGD momentum of the controller
  c.controller.base_lr = 0.05  # learned_schedule: lr_base
  c.controller.num_knots = 8  # learned_schedule: knots of s(t/T)
  c.controller.feedback = True  # learned_schedule: use the feedback MLP

  c.meta = ml_collections.ConfigDict()
  c.meta.es_pairs = 64
  c.meta.es_sigma = 0.1
  c.meta.shapes_per_step = 4
  c.meta.perturb = ""  # "": every parameter; else comma-separated groups
  # Stages: one meta.perturb value per stage, meta_steps split between them,
  # each from the theta the last ended at (e.g. ("knots", ""): the knots
  # alone, then every parameter); (): one stage with meta.perturb.
  c.meta.stages = ()
  c.meta.truncate = 0  # 0: score whole runs; else after this many steps
  c.meta.meta_steps = 1000
  c.meta.lr = 0.01  # Adam
  c.meta.weight_decay = 0.0
  c.meta.clip_norm = 0.0  # 0: no clipping
  c.meta.eval_every = 25  # validation meta-objective period (meta-steps)
  # Validation runs per training shape: fixed, so that runs with different
  # numbers of pairs are scored on the same runs (0: one meta-step's group
  # size, which shares its compiled programs).
  c.meta.val_seeds_per_shape = 16
  c.meta.cosine_check = True
  c.meta.save_every = 25

  c.test = ml_collections.ConfigDict()
  c.test.enabled = True
  c.test.num_seeds = 10  # paired test seeds per held-out shape
  c.test.num_tune_seeds = 2
  c.test.grid_low = 0.0125  # lr grid: grid_low * sqrt(2)**k, k < grid_points
  c.test.grid_points = 10
  c.test.momentum = 0.9  # baselines' SGD momentum

  # Frozen transfer of the meta-trained controller (and its initialisation)
  # against the tuned baselines: the small CNN on full-size
  # Fashion-MNIST and ResNet-8 on the CIFAR-10 JPEG copy.
  c.transfer = family_transfer_config()

  if variant in ("small", "small_fmnist"):
    c.output_dir = f"results/family_es_{variant}"
    c.family.train_shapes = 8
    c.meta.es_pairs = 32
    c.meta.meta_steps = 150
    c.meta.eval_every = 15
    c.meta.save_every = 15
    c.test.grid_points = 8
    c.transfer = family_transfer_config("small")
    if variant == "small_fmnist":
      fashion_mnist_only(c)
  elif variant == "debug":
    c.output_dir = "results/family_es_debug"
    c.family.sources = ("fashion_mnist:7",)
    c.family.num_steps = (20, 40)
    c.family.train_shapes = 2
    c.family.held_out_seeds = 1
    c.meta.es_pairs = 4
    c.meta.shapes_per_step = 2
    c.meta.meta_steps = 3
    c.meta.eval_every = 2
    c.meta.val_seeds_per_shape = 2
    c.meta.save_every = 2
    c.meta.cosine_check = False
    c.test.num_seeds = 2
    c.test.num_tune_seeds = 1
    c.test.grid_points = 8
    c.transfer = family_transfer_config("debug")
    c.transfer.tasks = ("cnn",)
  elif variant not in (None, ""):
    raise ValueError(f"unknown variant {variant!r}; choose one of "
                     f"{VARIANTS}")
  return c
