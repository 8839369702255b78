"""RL learning-rate policies trained over the task family, judged on held-out
instances and transferred frozen to a CNN and a ResNet.

  lrmeta rl-train --config configs/rl_family.py          # full: meant for a GPU
  lrmeta rl-train --config configs/rl_family.py:small    # 2 CPU cores
  lrmeta rl-train --config configs/rl_family.py:debug    # seconds (tests)
  lrmeta rl-train --config configs/rl_family.py:small_fmnist  # no CIFAR-10

One actor network (``env.hidden``, scale-free features) is trained three
ways on the same training shapes of the family (``lrmeta.tasks.family``:
pooled Fashion-MNIST and grayscale CIFAR-10 JPEG copy, MLPs of width
16/32/64, batch 32/64/128, budgets 100/200/400, label noise): PPO with
discrete rate factors (lrmeta's environment, not the authors' of Xu, Dai,
Kemp, Metz 2019), the actor-critic with a continuous log-factor (modelled on
Xu, Qin et al. 2017) and whole-run ES on the
continuous actor's weights (the engine's meta-optimizer; as many training
runs as PPO's episodes; ``meta.action=discrete`` gives ES PPO's head).
Every policy then goes through the family's held-out protocol (baselines
constant / step / cosine / warm-up + cosine, base rates tuned per instance and
once per family, paired seeds, 95 % intervals) and is transferred frozen to
the small CNN on full-size Fashion-MNIST and to ResNet-8 on the CIFAR-10 JPEG
copy against tuned cosine. ``env.base_schedule="cosine"`` makes the policy
residual: its factors correct a cosine decay over each run's budget.
``small_fmnist`` is ``small`` without CIFAR-10 (Fashion-MNIST family sources
only, transfer to the small CNN only).
"""

import ml_collections

from lrmeta.experiments.config import (actor_critic_config,
                                      family_transfer_config,
                                      fashion_mnist_only, ppo_config)

VARIANTS = ("", "small", "debug", "small_fmnist")


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.name = "rl_family"
  c.output_dir = "results/rl_family"
  c.seed = 0                     # trainers' seed (actor init, episodes, noise)
  c.scope = "family"             # task | family: what the policy trains on
  c.algos = ("ppo", "actor_critic", "es")  # the first is the headline policy

  c.family = ml_collections.ConfigDict()
  c.family.sources = ("fashion_mnist:7", "fashion_mnist:14", "cifar10:8")
  c.family.num_steps = (100, 200, 400)
  c.family.train_shapes = 16     # distinct training shapes (never held out)
  c.family.shapes_seed = 0
  c.family.held_out_seeds = 2

  # The environment (one family instance per episode) and the actor.
  c.env = ml_collections.ConfigDict()
  c.env.mode = "lrmeta"          # lrmeta's environment (lrmeta/rl/env.py)
  c.env.decisions = 20           # per episode, whatever the budget
  c.env.features = "scale_free"  # basic | xu2019 | scale_free
  c.env.factors = (0.5, 0.8, 1.0, 1.25, 2.0)  # PPO / ES: discrete factors
  c.env.max_log_factor = 0.7     # actor-critic: continuous log-factor bound
  # "cosine": the policy's factors correct a cosine decay over the budget
  # (a policy that keeps the rate is cosine annealing); "constant": they set
  # the rate alone.
  c.env.base_schedule = "constant"
  # "uniform": a decision every budget / decisions steps; "densify": the
  # same number, half of them in the last 30 % of the budget.
  c.env.decision_spacing = "uniform"
  c.env.hidden = (32, 32)        # actor MLP
  c.env.probe_size = 64
  c.env.base_lr = 0.1            # SGD base rate (the policy scales it)
  c.env.momentum = 0.9
  c.env.init_log_lr_range = 1.0  # episodes start at base_lr * e^U[-r, r]
  c.env.reward = "val_loss"
  c.env.shaping = 1.0
  c.env.final_weight = 10.0
  c.env.val_batch_size = 128
  c.env.final_val_examples = 2000
  c.env.keep_bias = 1.0          # initial logit bonus of factor 1
  c.env.sequential = False       # vmap the environments

  c.ppo = ppo_config(128, 400, 10)  # num_envs, iterations, checkpoint_every

  c.actor_critic = actor_critic_config(128, 400)  # num_envs, episodes

  # Whole-run ES on the actor's weights (lrmeta.meta.family_es): as many
  # training runs as PPO's episodes, 2 * es_pairs per meta-step.
  c.meta = ml_collections.ConfigDict()
  # The ES actor's head: "continuous" (the actor-critic's mean log-factor:
  # the deployed rate moves smoothly with the weights, so ES sees a signal)
  # or "discrete" (PPO's factors taken greedily: small perturbations rarely
  # change an argmax, and the estimate is often exactly 0).
  c.meta.action = "continuous"
  # Normalised fitness clipped at 3 (about a chance-level run on clean
  # Fashion-MNIST), diverged runs scored 3: an actor that multiplies the rate
  # every decision can blow runs up. 0: no cap (diverged pairs left out).
  c.meta.fitness_cap = 3.0
  c.meta.es_pairs = 64
  c.meta.es_sigma = 0.1
  c.meta.shapes_per_step = 4
  # "": every weight; "params/Dense_2": the output layer alone (key paths,
  # comma-separated).
  c.meta.perturb = ""
  c.meta.truncate = 0
  c.meta.lr = 0.01               # Adam
  c.meta.weight_decay = 0.0
  c.meta.clip_norm = 0.0
  c.meta.eval_every = 25
  c.meta.val_seeds_per_shape = 8
  c.meta.cosine_check = True
  c.meta.save_every = 25

  # The held-out protocol (lrmeta.protocol.compare_family).
  c.test = ml_collections.ConfigDict()
  c.test.enabled = True
  c.test.num_seeds = 10
  c.test.num_tune_seeds = 2
  c.test.grid_low = 0.0125       # grid_low * sqrt(2)**k, k < grid_points
  c.test.grid_points = 10
  c.test.momentum = 0.9

  # Frozen transfer against tuned cosine (paired test seeds): the small CNN
  # on full-size Fashion-MNIST and ResNet-8 on the CIFAR-10 JPEG copy.
  c.transfer = family_transfer_config()

  variant = variant or ""
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
  if variant in ("small", "small_fmnist"):
    c.output_dir = f"results/rl_family_{variant}"
    c.family.train_shapes = 8
    c.ppo.num_envs = 64
    c.ppo.iterations = 60        # 3,840 episodes
    c.ppo.checkpoint_every = 5
    c.actor_critic.num_envs = 64
    c.actor_critic.episodes = 60
    c.meta.es_pairs = 32         # 60 meta-steps of 64 runs: 3,840 runs
    c.meta.eval_every = 10
    c.meta.save_every = 10
    c.meta.val_seeds_per_shape = 4
    c.test.grid_points = 8
    c.transfer = family_transfer_config("small")
    if variant == "small_fmnist":
      fashion_mnist_only(c)
  elif variant == "debug":
    c.output_dir = "results/rl_family_debug"
    c.family.sources = ("fashion_mnist:7",)
    c.family.num_steps = (20, 40)
    c.family.train_shapes = 2
    c.family.held_out_seeds = 1
    c.env.decisions = 4
    c.env.hidden = (8,)
    c.env.val_batch_size = 32
    c.env.final_val_examples = 200
    c.ppo.num_envs = 4
    c.ppo.iterations = 2
    c.ppo.epochs = 1
    c.ppo.minibatches = 1
    c.ppo.checkpoint_every = 1
    c.actor_critic.num_envs = 4
    c.actor_critic.episodes = 2
    c.meta.es_pairs = 2
    c.meta.shapes_per_step = 2
    c.meta.eval_every = 1
    c.meta.save_every = 1
    c.meta.val_seeds_per_shape = 1
    c.meta.cosine_check = False
    c.test.num_seeds = 2
    c.test.num_tune_seeds = 1
    c.test.grid_points = 8
    c.transfer = family_transfer_config("debug")
  return c
