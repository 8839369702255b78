"""RL learning-rate policy on Fashion-MNIST.

In lrmeta's environment (``env.mode = "lrmeta"``, the default variants),
PPO trains a policy that multiplies the SGD learning rate every N steps of a
small-CNN training run; the frozen policy is then tested against the tuned
baselines (constant, step, cosine, warm-up + cosine, linear, WSD; same grid,
optimizer, budget; test seeds different from training and tuning seeds) and transferred unchanged to
CIFAR-10 (JPEG copy).

  lrmeta rl-train --config configs/rl_fmnist.py          # full: meant for a GPU
  lrmeta rl-train --config configs/rl_fmnist.py:small    # 2 CPU cores, < 30 min
  lrmeta rl-train --config configs/rl_fmnist.py:debug    # seconds, for tests

Variants ``xu2019_small`` / ``xu2019_debug`` run the environment of Xu,
Dai, Kemp, Metz (2019) as their released code builds it (``env.mode =
"xu2019"``: Adam from 0.01, a multiplier in [0.965, 1.035] every step, their
9 state features, reward 2 - validation loss, their PPO; see
``lrmeta/rl/xu2019.py``), on their default trainee, an MLP of 128 units, at
CPU scale (batch, steps and validation subset named below). The other
variants use lrmeta's own environment (``env.mode = "lrmeta"``, not the
paper's: discrete factors every N steps on SGD with momentum).

  lrmeta rl-train --config configs/rl_fmnist.py:xu2019_small  # 2 CPU cores

Variant ``xu2019_cifar_small`` is ``xu2019_small`` with the frozen policy
transferred to CIFAR-10 (JPEG copy): the same MLP of 128 units on the
images, Adam, 300 steps of batch 250, every schedule tuned there, 10 paired
test seeds; two evaluations along each Fashion-MNIST run (``xu2019_small``:
ten) to fit 2 CPU cores.

Variants ``xu2017`` / ``xu2017_small`` switch to the Xu, Qin et al. (2017)
set-up: continuous log-factor action, training-loss reward, actor-critic.
Variant ``cifar_small`` runs the transfer of the paper's Table 2 the other
way round: the policy trains on CIFAR-10 (JPEG copy) with the narrow small
CNN of ``small`` and transfers to Fashion-MNIST (the small CNN at its default
widths, the budget of the ``small`` training task).
"""

import ml_collections

from lrmeta.experiments.config import (actor_critic_config, ppo_config,
                                      transfer_section,
                                      task_config)

VARIANTS = ("", "small", "debug", "xu2017", "xu2017_small", "cifar_small",
            "xu2019_small", "xu2019_debug", "xu2019_cifar_small")


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.name = "rl_fmnist"
  c.output_dir = "results/rl_fmnist"
  c.scope = "task"               # task | family: what the policy trains on
  c.seed = 0                     # PPO / actor-critic seed (training episodes)
  c.algo = "ppo"                 # ppo | actor_critic

  c.task = task_config("fashion_mnist", "small_cnn")
  c.task.max_train = 0
  c.model = ml_collections.ConfigDict()
  c.model.features = (16, 32)    # small_cnn conv widths
  c.model.hidden = 128           # small_cnn dense width (mlp: its one layer)

  # The environment: one training run is an episode.
  c.env = ml_collections.ConfigDict()
  c.env.mode = "lrmeta"          # lrmeta | xu2019 (the authors' environment)
  c.env.total_steps = 860        # inner steps per episode (the budget)
  c.env.steps_per_action = 43    # N: one decision every N steps
  c.env.features = "xu2019"      # basic | xu2019 | scale_free
  c.env.action = "discrete"      # discrete | continuous
  c.env.factors = (0.5, 0.8, 1.0, 1.25, 2.0)
  c.env.max_log_factor = 0.7
  # "cosine": the policy's factors correct a cosine decay over the budget
  # (a policy that keeps the rate is cosine annealing); "constant": they set
  # the rate alone.
  c.env.base_schedule = "constant"
  c.env.hidden = (32, 32)        # actor MLP
  c.env.probe_size = 64
  c.env.base_lr = 0.03           # SGD (momentum) base rate
  c.env.momentum = 0.9
  c.env.init_log_lr_range = 1.5  # episodes start at base_lr * e^U[-r, r]
  c.env.reward = "val_loss"      # val_loss (Xu 2019) | train_loss (Xu 2017)
  c.env.shaping = 1.0
  c.env.final_weight = 10.0      # the final validation loss dominates
  c.env.val_batch_size = 128
  c.env.final_val_examples = 1000
  c.env.keep_bias = 1.0          # initial logit bonus of factor 1 (keep LR)
  c.env.sequential = False       # lax.map the envs (faster on CPU) vs vmap
  # Training tasks besides the clean one: the same data with these
  # symmetric training-label-noise rates (validation stays clean); PPO /
  # actor-critic iterations cycle through them. Off by default: with (0.5,)
  # the small run's transfer to CIFAR-10 did not improve (docs/results/rl.md).
  c.env.train_label_noise = ()

  c.ppo = ppo_config(16, 100, 2)  # num_envs, iterations, checkpoint_every

  c.actor_critic = actor_critic_config(16, 100)  # num_envs, episodes

  # The "xu2019" environment (lrmeta/controllers/rl_xu2019.py,
  # lrmeta/rl/xu2019.py); defaults are the authors' script's.
  c.xu2019 = ml_collections.ConfigDict()
  c.xu2019.episodes = 100        # one episode per PPO update
  c.xu2019.keep_interval = 1     # a multiplier every step
  c.xu2019.val_examples = 10000  # the script: the whole validation split
  c.xu2019.action_std = 0.1
  c.xu2019.clip_low = -0.2
  c.xu2019.clip_high = 0.5
  c.xu2019.reward_baseline = "fixed"  # fixed | average | exponential | ratio
  c.xu2019.logprob_of = "multiplier"  # the script's; "sample": lrmeta's

  # Test on the training task: every method's base rate is tuned on the
  # validation split over the same grid with ``tune_seeds``, then run on
  # ``test_seeds`` (disjoint from the training and tuning seeds).
  c.eval = ml_collections.ConfigDict()
  # The baselines (lrmeta.protocol.DEFAULT_BASELINES); the policy's verdict
  # is against the best of them.
  c.eval.schedules = ("constant", "step", "cosine", "warmup_cosine", "linear",
                      "wsd")
  c.eval.lr_grid = (0.01, 0.02, 0.05, 0.1)
  c.eval.tune_seeds = (100,)
  c.eval.test_seeds = (1000, 1001, 1002)
  c.eval.num_evals = 4           # evaluations along each run (for the plots)
  c.eval.eval_examples = 0       # 0: whole splits
  c.eval.deterministic = True    # greedy policy

  # Transfer, the policy unchanged (its N scales with the budget so it takes
  # the same number of decisions): one section of the transfer schema
  # (lrmeta.experiments.transfer) per task in ``transfer.tasks``. ResNet-8
  # on CIFAR-10, 7,000 steps of batch 128 (about 20 epochs of the 45,000
  # training images), four evaluations along each run.
  c.transfer = ml_collections.ConfigDict()
  c.transfer.enabled = True
  c.transfer.tasks = ("cifar",)
  c.transfer.cifar = transfer_section(
      "cifar10", "resnet8", 128, 7000, (0.02, 0.05, 0.1, 0.2), 5000,
      tune_seeds=(100,), test_seeds=(1000, 1001, 1002),
      baselines=c.eval.schedules, eval_every=1750)

  variant = variant or ""
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")
  if variant.startswith("xu2017"):
    c.name = "rl_fmnist_xu2017"
    c.output_dir = "results/rl_fmnist_xu2017"
    c.algo = "actor_critic"
    c.env.features = "basic"
    c.env.action = "continuous"
    c.env.reward = "train_loss"
  if variant.endswith("small") or variant == "debug":
    # Two CPU cores, within 30 min: a 10k-image subset, a narrower small
    # CNN, batch 32, 200 steps (0.64 epoch) per episode, a decision every 20
    # steps.
    c.output_dir += "_small"
    c.task.max_train = 10000
    c.task.num_val = 2000
    c.task.batch_size = 32
    c.model.features = (8, 16)
    c.model.hidden = 64
    c.env.total_steps = 200
    c.env.steps_per_action = 20
    c.env.final_val_examples = 500
    c.env.sequential = True
    c.ppo.num_envs = 8
    c.ppo.iterations = 40
    c.ppo.minibatches = 2
    c.actor_critic.num_envs = 8
    c.actor_critic.episodes = 40
    c.eval.eval_examples = 2000
    # 5,000 CIFAR-10 images, 312 steps of batch 32 (about 2 epochs). Three
    # rates (a fourth cost 10 % of the run): earlier small runs tuned cosine
    # to 0.2 (the edge of (0.02, ..., 0.2)), the PPO policy to 0.05 and the
    # actor-critic to 0.5. Whole splits (the CIFAR-10 JPEG copy is stored by
    # class; the loader mixes its test split, but subsets still add
    # sampling noise).
    c.transfer.cifar = transfer_section(
        "cifar10", "resnet8", 32, 312, (0.05, 0.2, 0.5), 1000,
        max_train=5000, tune_seeds=(100,), test_seeds=(1000, 1001, 1002),
        baselines=c.eval.schedules, eval_every=78)
  if variant == "cifar_small":
    c.name = "rl_cifar10"
    c.output_dir = "results/rl_cifar10_small"
    c.task.dataset = "cifar10"
    # 200 steps of batch 32, as ``small`` trains.
    del c.transfer["cifar"]
    c.transfer.tasks = ("cnn",)
    c.transfer.cnn = transfer_section(
        "fashion_mnist", "small_cnn", 32, 200, (0.02, 0.05, 0.1), 2000,
        max_train=10000, tune_seeds=(100,), test_seeds=(1000, 1001, 1002),
        baselines=c.eval.schedules, eval_every=50)
  if variant.startswith("xu2019"):
    _xu2019(c, variant)
  if variant == "debug":
    c.name += "_debug"
    c.output_dir = "results/rl_fmnist_debug"
    c.task.max_train = 1000
    c.task.num_val = 300
    c.task.batch_size = 16
    c.task.model = "mlp"         # compiles in seconds; the CNN is exercised
    c.env.train_label_noise = (0.5,)  # exercises the task-family cycle
    c.model.hidden = 32          # by the small variant
    c.env.total_steps = 12
    c.env.steps_per_action = 4
    c.env.probe_size = 8
    c.env.hidden = (8,)
    c.env.val_batch_size = 32
    c.env.final_val_examples = 100
    c.ppo.num_envs = 2
    c.ppo.iterations = 2
    c.ppo.epochs = 1
    c.ppo.minibatches = 1
    c.ppo.checkpoint_every = 1
    c.actor_critic.num_envs = 2
    c.actor_critic.episodes = 2
    c.eval.schedules = ("cosine",)
    c.eval.lr_grid = (0.02, 0.1)
    c.eval.test_seeds = (1000, 1001)
    c.eval.num_evals = 1
    c.eval.eval_examples = 200
    c.transfer.enabled = False
  return c


def _xu2019(c, variant):
  """The authors' environment on their default trainee (MLP 128, Adam from
  0.01, 50,000 / 10,000 Fashion-MNIST split). CPU scale: batch 250 (theirs
  1,000), 300 steps an episode, the validation loss at each step on the
  first 1,000 validation images (theirs: all 10,000), 60 episodes."""
  c.name = "rl_fmnist_" + variant
  c.output_dir = "results/rl_fmnist_" + variant
  c.env.mode = "xu2019"
  c.algo = "ppo"
  c.task = task_config("fashion_mnist", "mlp")
  c.task.max_train = 0
  c.task.num_val = 10000
  c.task.batch_size = 250
  c.model.hidden = 128
  c.env.base_lr = 0.01
  c.env.total_steps = 300
  c.env.steps_per_action = 1     # unused: xu2019.keep_interval decides
  c.xu2019.episodes = 60
  c.xu2019.val_examples = 1000
  c.eval.lr_grid = (0.001, 0.003, 0.01, 0.03)
  c.eval.tune_seeds = (100,)
  c.eval.test_seeds = tuple(range(1000, 1010))
  c.eval.num_evals = 10
  c.eval.eval_examples = 0
  c.transfer.enabled = False
  if variant == "xu2019_cifar_small":
    # The frozen policy on the same MLP over CIFAR-10 (JPEG copy), Adam,
    # the schedules tuned there over the same grid less its top rate.
    c.eval.num_evals = 2
    c.transfer.enabled = True
    c.transfer.tasks = ("cifar",)
    c.transfer.cifar = transfer_section(
        "cifar10", "mlp", 250, 300, (0.001, 0.003, 0.01), 5000,
        hidden=(128,), tune_seeds=(100,), test_seeds=tuple(range(1000, 1010)),
        baselines=c.eval.schedules)
  if variant == "xu2019_debug":
    c.task.max_train = 1000
    c.task.num_val = 300
    c.task.batch_size = 16
    c.model.hidden = 16
    c.env.total_steps = 12
    c.xu2019.episodes = 2
    c.xu2019.val_examples = 100
    c.eval.schedules = ("cosine", "wsd")
    c.eval.lr_grid = (0.003, 0.01)
    c.eval.test_seeds = (1000, 1001)
    c.eval.num_evals = 2
    c.eval.eval_examples = 200
