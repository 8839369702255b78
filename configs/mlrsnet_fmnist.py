"""MLR-SNet meta-trained on Fashion-MNIST / small CNN, meta-tested against
the tuned baselines (constant, step, cosine, warm-up + cosine, linear, WSD),
transferred to CIFAR-10 (JPEG copy) / ResNet-8.

  lrmeta meta-train --config configs/mlrsnet_fmnist.py          # GPU-sized
  lrmeta meta-train --config configs/mlrsnet_fmnist.py:small    # 2 CPU cores, <30 min
  lrmeta meta-train --config configs/mlrsnet_fmnist.py:debug    # seconds (tests)

Meta-objective (``meta.estimator``):

* ``"truncated"`` (default): whole training runs of ``meta.horizon`` steps
  (= the meta-test budget) cut into truncations of ``meta.window`` steps;
  each meta-step backpropagates through one truncation (rematerialised) and
  scores the meta-set loss at its end, so an episode's objective is the sum
  of meta-set losses at ``horizon / window`` points along the run, the last
  at the end of the budget.
* ``"unrolled"``: the meta-set loss at the END of a whole run, by backprop
  through the full unroll. At 200 steps of the small CNN its meta-gradient
  exploded (norm 3e1 -> 1e7 between two runs; the next inner run collapsed
  to chance) -- the chaotic-unroll pathology of Metz et al. 2019 -- so it is
  not the default.
* ``"lookahead"``: after the paper's scheme, one differentiable SGD step
  scored on a meta batch every ``meta.every`` steps along one run; the
  differentiated step is the real one, at the theta before the update (the
  authors' protocol is ``"online_lookahead"`` below). Greedy: short-horizon bias (Wu et al. 2018) drove the
  rate to ~0.01 in our runs (see docs/results/mlr_snet.md).
* ``"online_lookahead"``: the authors' own meta-training
  (``meta-train/image-classification/meta_train.py``): one run of
  ``meta.horizon`` steps, a virtual one-step look-ahead every
  ``meta.every`` minibatches counted within epochs of
  ``meta.steps_per_epoch`` (300 of 383 in their CIFAR-10 run: once per
  epoch), meta-loss on a meta batch of 128 in train mode, Adam 1e-3 / L2
  1e-4, no clipping, theta updated online before the real step; snapshots
  after epochs 1 and horizon / 2 and the final theta, switched at thirds of
  the meta-test budget. Variants ``official`` (their settings on the small
  CNN) and ``small_official`` (CPU scale).
* ``"es"``: antithetic ES (``meta.es_pairs`` pairs of perturbations of
  scale ``meta.es_sigma``, both runs of a pair on the same network and
  minibatches) over truncations of ``meta.window`` steps; with
  ``meta.window == meta.horizon`` it scores the meta-set loss at the END of
  whole runs with neither the short-horizon bias of truncations nor the
  exploding gradients of backprop through them (Metz et al. 2019), at the
  price of a noisy estimate. Variant ``small_es``.
* ``"pes"``: persistent ES over truncations of ``meta.window`` steps
  (``meta.es_pairs`` antithetic pairs, scale ``meta.es_sigma``); unbiased
  for the sum of meta-set losses at the truncation ends. Variant
  ``small_pes``.
"""

import ml_collections

from lrmeta.experiments.config import task_config, transfer_section

VARIANTS = ("", "small", "small_es", "small_pes", "official",
            "small_official", "debug")


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.name = "mlrsnet_fmnist"
  c.output_dir = "results/mlrsnet_fmnist"
  c.kind = "task"  # meta-train on one task ("family": on the task family)
  c.seed = 0  # meta-training seed (inner runs of meta-training derive from it)

  c.task = task_config("fashion_mnist", "small_cnn")
  c.task.num_val = 1000  # MLR-SNet's meta set: 1,000 held-out train images

  # Inner optimizer, shared by MLR-SNet and the baselines. The paper's
  # public meta-training code uses plain SGD (momentum 0) and its rate bound
  # gamma (~0.67 for L0 = 2.3, C = 10) is calibrated for that; with momentum
  # 0.9 the untrained controller's rate (~gamma / 2) is ~10x too large for
  # the small CNN and diverged in our debug run, so we keep 0.
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.momentum = 0.0
  c.optimizer.weight_decay = 5e-4

  c.controller = ml_collections.ConfigDict()
  c.controller.name = "mlr_snet"
  c.controller.hidden = 50
  c.controller.width = 0  # gate-MLP width; 0: hidden // 2 (the authors')
  c.controller.semantics = "meta_test"  # or "meta_train" (module.py's cell)
  c.controller.init = "torch"  # PyTorch's default; or "uniform"
  c.controller.gamma = 0.0  # 0: computed from the first loss (the paper's L0)

  c.meta = ml_collections.ConfigDict()
  c.meta.estimator = "truncated"
  c.meta.horizon = 3 * 430  # inner steps of one meta-training run
  c.meta.meta_steps = 300  # outer updates (truncated, unrolled, pes)
  c.meta.num_tasks = 4  # inner runs (seeds) vmapped per meta-step
  c.meta.every = 1  # lookahead: a meta-update every this many inner steps
  c.meta.window = 129  # truncated, pes: truncation length
  c.meta.es_pairs = 8  # es, pes
  c.meta.es_sigma = 0.01
  c.meta.meta_batch_size = 1000  # meta-set examples per meta-loss
  c.meta.lr = 2e-3  # Adam (the paper: 1e-3)
  c.meta.weight_decay = 1e-4
  c.meta.steps_per_epoch = 0  # online_lookahead: count `every` per epoch (0: off)
  c.meta.meta_train_mode = False  # meta-loss with the model in train mode
  c.meta.clip_norm = 1.0
  c.meta.save_every = 10  # meta-checkpoint period (resume)
  # Meta-test with the paper's snapshot switching (1/3, 2/3, final) instead
  # of the final theta alone. Meaningful for "lookahead" (one run of
  # meta-training whose snapshots see different phases of training).
  c.meta.snapshots = False

  c.test = ml_collections.ConfigDict()
  c.test.steps = 3 * 430  # the meta-test budget (= meta.horizon by default)
  c.test.seeds = (1000, 1001, 1002)  # disjoint from meta-training's
  # The baselines (lrmeta.protocol.DEFAULT_BASELINES), peak rate tuned on
  # tune seeds disjoint from the test seeds.
  c.test.schedules = ("constant", "step", "cosine", "warmup_cosine", "linear",
                      "wsd")
  c.test.lr_grid = (0.025, 0.05, 0.1, 0.2, 0.4)
  c.test.eval_every = 430
  c.test.eval_examples = 0  # 0: whole splits

  # Transfer (one section of the shared schema, lrmeta.experiments.transfer):
  # the frozen controller on CIFAR-10 (JPEG copy) / ResNet-8 against the same
  # baselines, tune seeds disjoint from the test seeds.
  c.transfer = ml_collections.ConfigDict()
  c.transfer.enabled = True
  c.transfer.tasks = ("cifar",)
  c.transfer.cifar = transfer_section(
      "cifar10", "resnet8", 128, 3 * 390, (0.1, 0.3, 1.0), 1000,
      tune_seeds=(2002, 2003, 2004), test_seeds=(1000, 1001, 1002),
      baselines=c.test.schedules, eval_every=390, executor="population")

  if variant in ("small", "small_es", "small_pes"):
    # Two CPU cores, meant to finish within 30 min: 20k training images,
    # 200 steps of batch 64 (0.64 epoch); CIFAR-10 on a 10k subset, 150 steps
    # of batch 64. (With batch 128 it took 84 min on one core.)
    c.output_dir = "results/mlrsnet_fmnist_small"
    c.task.max_train = 20000
    c.task.batch_size = 64
    c.meta.horizon = 200
    c.meta.meta_steps = 100  # 20 training runs of 5 truncations
    c.meta.num_tasks = 1
    c.meta.window = 40
    c.meta.lr = 1e-2  # 100 meta-steps: 2e-3 moved the rate by 1 % in 10
    c.test.steps = 200
    # Every schedule tuned to 0.2 on (0.05, 0.1, 0.2, 0.4) in an earlier run;
    # 0.05 is dropped to save a quarter of the meta-test.
    c.test.lr_grid = (0.1, 0.2, 0.4)
    c.test.eval_every = 200  # the whole test split once, at the end
    c.transfer.cifar.max_train = 10000
    c.transfer.cifar.batch_size = 64
    c.transfer.cifar.steps = 150
    # Cosine tuned to the top of (0.1, 0.3, 1.0) and then of (0.3, 1.0,
    # 3.0) in earlier runs (plain SGD, BatchNorm ResNet-8).
    c.transfer.cifar.lr_grid = (1.0, 3.0, 10.0)
    c.transfer.cifar.eval_every = 150
    # of the test split (loader shuffles it)
    c.transfer.cifar.eval_examples = 5000
    if variant == "small_es":
      # The meta-set loss at the end of whole 200-step runs, by antithetic
      # ES: no short-horizon bias (what collapsed the truncated runs' rate)
      # and no backprop through a chaotic unroll (what made "unrolled"
      # explode). One meta-step = 2 x 4 whole runs; 20 meta-steps.
      c.output_dir = "results/mlrsnet_fmnist_small_es"
      c.meta.estimator = "es"
      c.meta.window = 200
      c.meta.meta_steps = 20
      c.meta.es_pairs = 4
      c.meta.save_every = 2
    elif variant == "small_pes":
      # PES over the same 40-step truncations as "small": unbiased for the
      # sum of the 5 meta-set losses along each run, where truncated
      # backprop is greedy within each window. 100 meta-steps = 20 runs.
      c.output_dir = "results/mlrsnet_fmnist_small_pes"
      c.meta.estimator = "pes"
      c.meta.es_pairs = 4
      c.meta.lr = 3e-3  # a noisier estimate than backprop's
  elif variant in ("official", "small_official"):
    # The authors' protocol (meta_train.py): plain SGD + weight decay 5e-4,
    # one long run, a look-ahead at minibatch 300 of each epoch on a meta
    # batch of 128 (train mode), Adam 1e-3 / 1e-4, no clipping, a
    # class-balanced meta set of 1,000 training images (data_loader.py
    # 153-165). Not theirs: gamma comes from the first minibatch loss (they
    # evaluate the training set once before training).
    c.output_dir = "results/mlrsnet_fmnist_official"
    c.meta.estimator = "online_lookahead"
    c.task.balanced_val = True
    c.meta.every = 300
    c.meta.steps_per_epoch = 422  # 54,000 training images / 128
    c.meta.horizon = 200 * 422
    c.meta.num_tasks = 1
    c.meta.meta_batch_size = 128
    c.meta.meta_train_mode = True
    c.meta.lr = 1e-3
    c.meta.clip_norm = 0.0
    c.meta.snapshots = True
    c.meta.save_every = 10
    if variant == "small_official":
      # CPU scale: 12,800 training images = 100 steps of 128 per epoch, a
      # look-ahead at the 78th (300 / 383 of the epoch, as theirs), 30
      # epochs.
      c.output_dir = "results/mlrsnet_fmnist_small_official"
      c.task.max_train = 12800
      c.meta.every = 78
      c.meta.steps_per_epoch = 100
      c.meta.horizon = 30 * 100
      c.test.steps = 3 * 100
      c.test.lr_grid = (0.05, 0.1, 0.2)
      c.test.eval_every = 300
      c.transfer.enabled = False
  elif variant == "debug":
    # For tests: an MLP instead of the CNN (compiles in seconds), 12 steps.
    c.output_dir = "results/mlrsnet_fmnist_debug"
    c.task.model = "mlp"
    c.task.max_train = 2000
    c.task.num_val = 200
    c.task.batch_size = 32
    c.meta.estimator = "unrolled"
    c.meta.horizon = 12
    c.meta.meta_steps = 8
    c.meta.num_tasks = 4
    c.meta.window = 4
    c.meta.es_pairs = 2
    c.meta.meta_batch_size = 200
    c.meta.lr = 5e-2
    c.meta.save_every = 8
    c.test.steps = 12
    c.test.seeds = (1000, 1001)
    c.test.lr_grid = (0.05, 0.2)
    c.test.eval_every = 12
    c.test.eval_examples = 500
    c.transfer.enabled = False
    c.transfer.cifar.max_train = 1000
    c.transfer.cifar.batch_size = 16
    c.transfer.cifar.steps = 4
    c.transfer.cifar.tune_seeds = (2000,)
    c.transfer.cifar.test_seeds = (1000,)
    c.transfer.cifar.lr_grid = (0.1,)
    c.transfer.cifar.eval_every = 4
    c.transfer.cifar.eval_examples = 200
  elif variant not in (None, ""):
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
  return c
