"""Main job: the small CNN on Fashion-MNIST under three classic LR schedules.

  lrmeta train --config configs/fashion_mnist.py          # 1 epoch, 2 seeds
  lrmeta train --config configs/fashion_mnist.py:small    # seconds, for tests
"""

import ml_collections

from lrmeta.experiments.config import task_config

VARIANTS = ("", "small")


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.name = "fashion_mnist_small_cnn"
  c.output_dir = "results/fashion_mnist"
  c.seeds = (0, 1)

  c.task = task_config("fashion_mnist", "small_cnn")

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"      # sgd | adam
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 0.0

  # Methods to compare, one string each (see
  # lrmeta.experiments.optim.method_optimizer): the baselines
  # (lrmeta.protocol.DEFAULT_BASELINES) "constant" / "step" / "cosine" /
  # "warmup_cosine" / "linear" / "wsd" at peak `learning_rate`, with options
  # such as "wsd(decay_fraction=0.3)", any LRBench policy spec such as
  # "tri2(k0=0.01, k1=0.1, l=100)", an online controller such as
  # "hd_sgd(initial_learning_rate=0.005, hyper_lr=1e-3)", "ckpt:PATH"
  # for a saved meta-trained / RL-trained controller, or "pretrained:NAME"
  # for a controller shipped with lrmeta (lrmeta.pretrained.names()).
  c.methods = ("constant", "step", "cosine", "warmup_cosine", "linear", "wsd")
  c.learning_rate = 0.05

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 1.0
  c.train.eval_every = 100
  c.train.eval_examples = 0     # 0: whole splits

  if variant == "small":
    c.seeds = (0,)
    c.task.max_train = 2000
    c.task.num_val = 500
    c.task.batch_size = 32
    c.train.epochs = 1.0
    c.train.eval_every = 31
    c.train.eval_examples = 500
    c.output_dir = "results/fashion_mnist_small"
  elif variant not in (None, ""):
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
  return c
