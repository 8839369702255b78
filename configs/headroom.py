"""Headroom on the task family: the per-instance oracle among hand schedules
against the best single hand schedule tuned for the whole family.

  python scripts/headroom.py --config configs/headroom.py            # as measured
  python scripts/headroom.py --config configs/headroom.py:long       # 4x budgets
  python scripts/headroom.py --config configs/headroom.py:noise      # 50 % label noise
  python scripts/headroom.py --config configs/headroom.py:small_data # 1,000 images
  python scripts/headroom.py --config configs/headroom.py:adam       # Adam
  python scripts/headroom.py --config configs/headroom.py:mixed      # side by side

The held-out shapes are those of ``family`` (``configs/learned_lr.py:small``:
3 sources x {16x16 MLP at 100 steps, 64x64 at 400, 16 at 200}, batch 64);
the widened variants change them along one axis each (``widen``), and
``mixed`` puts the Fashion-MNIST 7x7 shapes as they are, with 50 % label
noise and on 1,000 images side by side (9 shapes); ``long`` runs the
Fashion-MNIST 7x7 shapes at 4x their budgets (400-1,600 steps) with
constant, cosine, linear decay and WSD at 10, 30 and 50 %. The widened variants
judge the default baselines plus WSD at decay fractions 0.1, 0.3 and 0.5
(9 schedules); the family as measured all of
:data:`lrmeta.protocol.headroom.HAND_SCHEDULES` (11). Every schedule has its peak rate tuned on ``test.num_tune_seeds`` tune seeds (grid
``grid_low * sqrt(2)**k``, widened at an edge) and is tested on
``test.num_seeds`` paired seeds disjoint from them.
"""

import ml_collections

from lrmeta.protocol.headroom import HAND_SCHEDULES

VARIANTS = ("", "long", "noise", "small_data", "adam", "mixed", "debug")


def get_config(variant=None):
  if variant not in (None, *VARIANTS):
    raise ValueError(f"unknown variant {variant!r}; choose one of "
                     f"{VARIANTS}")
  c = ml_collections.ConfigDict()
  c.name = "headroom"
  c.family = "configs/learned_lr.py:small"
  c.output_dir = f"results/headroom_{variant or 'family'}"
  c.schedules = HAND_SCHEDULES
  c.optimizer = "sgd"  # or "adam"
  c.momentum = 0.9  # SGD's
  c.sources = ()  # held-out shapes of these sources only ("dataset:pool")
  # Axes of the widened family, applied to every held-out shape; a tuple
  # of several variants' axes gives one set of shapes per entry (mixed).
  c.widen = ml_collections.ConfigDict()
  c.widen.axes = ("none",)  # each of none, long, noise, small_data
  c.widen.steps_scale = 4.0  # long
  c.widen.label_noise = 0.5  # noise
  c.widen.max_train = 1_000  # small_data
  c.test = ml_collections.ConfigDict()
  c.test.num_seeds = 10
  c.test.num_tune_seeds = 2
  c.test.grid_low = 0.0125
  c.test.grid_points = 8
  if variant not in (None, "", "debug"):
    c.schedules = HAND_SCHEDULES[:9]
  if variant in ("long", "noise", "small_data"):
    c.widen.axes = (variant,)
  if variant == "long":  # 4x the cost per shape: fewer shapes and schedules
    c.sources = ("fashion_mnist:7",)
    c.schedules = ("constant", "cosine", "linear", *HAND_SCHEDULES[6:9])
  elif variant == "adam":
    c.optimizer = "adam"
    c.test.grid_low = 0.0025
  elif variant == "mixed":
    c.sources = ("fashion_mnist:7",)
    c.widen.axes = ("none", "noise", "small_data")
  elif variant == "debug":
    c.family = "configs/learned_lr.py:debug"
    c.schedules = ("constant", "cosine", "wsd(decay_fraction=0.3)")
    c.test.num_seeds = 2
    c.test.num_tune_seeds = 1
  return c
