"""A family of cheap, real training runs for meta-training learning-rate rules.

Meta-training a learning-rate controller by evolution strategies scores each
candidate by whole training runs; to evaluate dozens of whole runs per outer
step each run must cost milliseconds, yet stay a real training problem. The
family here follows the tiny-task families of ``learned_optimization``
(small real image datasets, small networks, short budgets, many variations)
and the whole-run evaluation that PES argues for (Vicol, Metz,
Sohl-Dickstein, ICML 2021): Fashion-MNIST average-pooled to 7x7 or 14x14 and
the CIFAR-10 JPEG copy in grayscale pooled to 8x8, classified by ReLU MLPs
with one or two hidden layers of width 16, 32 or 64, trained for 100, 200 or
400 steps at batch 32, 64 or 128, optionally with symmetric label noise and on
a subset of the training images.

* :class:`Instance` describes one training run (immutable and hashable);
  its :attr:`Instance.shape` (everything but the run seed) says which
  instances train together as one vmapped program.
* :class:`Family` samples instances from a PRNG key and names a fixed set of
  held-out instances: unseen run seeds, and width/budget combinations that
  sampling never returns. It implements
  :class:`lrmeta.tasks.protocol.TaskFamily` (training shapes, held-out
  shapes, ``sample``, ``task``).
* :func:`pooled_dataset` loads and pools a dataset once per process;
  :meth:`Instance.task` builds the :class:`~lrmeta.tasks.Task`;
  :func:`instance_task` builds the task of a shape of any family.

Training instances and scoring them (one vmapped program per shape, the
normalised fitness) is :mod:`lrmeta.meta.family`.

References:
  Vicol, Metz, Sohl-Dickstein, "Unbiased Gradient Estimation in Unrolled
  Computation Graphs with Persistent Evolution Strategies", ICML 2021.
  Metz et al., ``learned_optimization`` (tiny-task families for meta-training
  learned optimizers), 2022.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrmeta.data import Dataset, load_dataset
from lrmeta.models import make_model
from lrmeta.tasks.base import Task

# Side length of the stored images of each source dataset.
SOURCE_SIDE = {"fashion_mnist": 28, "cifar10": 32}
# Validation images carved from the training split; fitness is the loss over
# all of them (a fixed set: the same images for every run of a data seed).
VAL_SIZE = 2_000
# ITU-R BT.601 luma weights (those of PIL's ``convert("L")``).
LUMA = (0.299, 0.587, 0.114)
# Sampled run seeds lie in [0, HELD_OUT_SEED_BASE); held-out instances use
# seeds from HELD_OUT_SEED_BASE upwards, so no sampled run is held out.
HELD_OUT_SEED_BASE = 2**30
_POOL_CHUNK = 8_192  # images pooled at once (bounds float32 temporaries)


# -- instances -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Instance:
  """One training run of the family: data, network, batch, budget, seed.

  Attributes:
    dataset: source dataset, a key of :data:`SOURCE_SIDE`.
    pool: side length after average pooling (must divide the source side);
      images are grayscale (CIFAR-10 is converted).
    hidden: widths of the MLP's hidden layers.
    batch_size: training minibatch size.
    num_steps: training budget ``T`` in steps.
    label_noise: fraction of training labels redrawn uniformly at random.
    max_train: keep only this many training images (``None``: all).
    seed: run seed: model initialisation and minibatch order.
    data_seed: seed of the validation split and of the label noise.
  """

  dataset: str = "fashion_mnist"
  pool: int = 7
  hidden: tuple[int, ...] = (32,)
  batch_size: int = 64
  num_steps: int = 200
  label_noise: float = 0.0
  max_train: int | None = None
  seed: int = 0
  data_seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
    if self.dataset not in SOURCE_SIDE:
      raise ValueError(f"dataset must be one of {tuple(SOURCE_SIDE)}, got "
                       f"{self.dataset!r}")
    side = SOURCE_SIDE[self.dataset]
    if self.pool <= 0 or side % self.pool:
      raise ValueError(f"pool must divide the {self.dataset} side {side}, got "
                       f"{self.pool}")
    if not self.hidden or min(self.hidden) <= 0:
      raise ValueError(f"hidden must be positive widths, got {self.hidden}")
    if self.batch_size <= 0 or self.num_steps <= 0:
      raise ValueError(f"batch_size and num_steps must be positive, got "
                       f"{self.batch_size}, {self.num_steps}")
    if not 0.0 <= self.label_noise <= 1.0:
      raise ValueError(f"label_noise must be in [0, 1], got "
                       f"{self.label_noise}")
    if self.max_train is not None and self.max_train <= 0:
      raise ValueError(f"max_train must be positive, got {self.max_train}")
    if self.seed < 0 or self.data_seed < 0:
      raise ValueError(f"seeds must be non-negative, got {self.seed}, "
                       f"{self.data_seed}")

  @property
  def shape(self) -> Instance:
    """The instance with its run seed cleared.

    Instances of equal shape share the data and the program and differ only
    in the run key, so they train as one vmapped population.
    """
    return dataclasses.replace(self, seed=0)

  @property
  def data_spec(self) -> tuple[str, int, int | None, float, int]:
    """Arguments of :func:`pooled_dataset` for this instance."""
    return (self.dataset, self.pool, self.max_train, float(self.label_noise),
            self.data_seed)

  def key(self) -> jax.Array:
    """The run's PRNG key (initialisation and minibatches)."""
    return jax.random.key(self.seed)

  def task(self) -> Task:
    """The :class:`~lrmeta.tasks.Task` of this run (its seed is unused).

    The network is :class:`lrmeta.models.MLP` with :attr:`hidden`; the
    whole validation split is evaluated in one chunk.
    """
    data = pooled_dataset(*self.data_spec)
    net = make_model("mlp", data.num_classes, hidden=self.hidden)
    return Task(self.shape.name.rsplit("/", 1)[0], data, net,
                batch_size=self.batch_size,
                eval_batch_size=data.val_x.shape[0])

  @property
  def name(self) -> str:
    widths = "x".join(str(h) for h in self.hidden)
    subset = "all" if self.max_train is None else str(self.max_train)
    return (f"{self.dataset}{self.pool}/mlp{widths}/b{self.batch_size}"
            f"/T{self.num_steps}/noise{self.label_noise:g}/n{subset}"
            f"/d{self.data_seed}/s{self.seed}")


def group_by_shape(instances: Sequence[Instance]
                   ) -> dict[Instance, list[int]]:
  """Indices of ``instances`` per shape, in order of first appearance."""
  groups: dict[Instance, list[int]] = {}
  for i, inst in enumerate(instances):
    groups.setdefault(inst.shape, []).append(i)
  return groups


# -- the family ----------------------------------------------------------------

Combo = tuple[tuple[int, ...], int]  # (hidden widths, num_steps)


@dataclasses.dataclass(frozen=True)
class Family:
  """The space instances are drawn from, and its held-out instances.

  Sampling draws each field uniformly from its options; the network and the
  budget are drawn jointly from :meth:`combos`, which leaves out the
  ``held_out_combos``. Held-out instances (:meth:`held_out`) use run seeds
  that sampling never returns and include those combinations.

  Attributes:
    sources: ``(dataset, pool)`` options.
    hidden: hidden-width options (one tuple per network).
    batch_sizes: batch-size options.
    num_steps: budget options.
    label_noise: label-noise options.
    max_train: training-subset options (``None``: all images).
    held_out_combos: ``(hidden, num_steps)`` pairs never sampled.
    held_out_seeds: run seeds per held-out configuration.
    data_seed: data seed of every instance.
  """

  sources: tuple[tuple[str, int], ...] = (
      ("fashion_mnist", 7), ("fashion_mnist", 14), ("cifar10", 8))
  hidden: tuple[tuple[int, ...], ...] = (
      (16,), (32,), (64,), (16, 16), (32, 32), (64, 64))
  batch_sizes: tuple[int, ...] = (32, 64, 128)
  num_steps: tuple[int, ...] = (100, 200, 400)
  label_noise: tuple[float, ...] = (0.0, 0.2, 0.5)
  max_train: tuple[int | None, ...] = (None, 10_000)
  held_out_combos: tuple[Combo, ...] = (((64, 64), 400), ((16,), 200))
  held_out_seeds: int = 2
  data_seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "hidden",
                       tuple(tuple(int(w) for w in h) for h in self.hidden))
    object.__setattr__(self, "held_out_combos", tuple(
        (tuple(int(w) for w in h), int(t)) for h, t in self.held_out_combos))
    for name in ("sources", "hidden", "batch_sizes", "num_steps",
                 "label_noise", "max_train"):
      if not getattr(self, name):
        raise ValueError(f"Family.{name} needs at least one option")
    if not self.combos():
      raise ValueError("held_out_combos leave no (hidden, num_steps) "
                       "combination to sample")
    if self.held_out_seeds <= 0:
      raise ValueError(f"held_out_seeds must be positive, got "
                       f"{self.held_out_seeds}")

  @property
  def train_shapes(self) -> tuple[Instance, ...]:
    """Every shape sampling can return, less the held-out shapes."""
    held = set(self.held_out_shapes)
    shapes = (Instance(dataset=d, pool=p, hidden=h, num_steps=t,
                       batch_size=b, label_noise=n, max_train=m,
                       data_seed=self.data_seed)
              for d, p in self.sources for h, t in self.combos()
              for b in self.batch_sizes for n in self.label_noise
              for m in self.max_train)
    return tuple(s for s in dict.fromkeys(shapes) if s not in held)

  @property
  def held_out_shapes(self) -> tuple[Instance, ...]:
    """The distinct shapes of :meth:`held_out`."""
    return tuple(dict.fromkeys(i.shape for i in self.held_out()))

  def task(self, shape: Instance) -> Task:
    """``shape.task()``: the pooled MLP task of an instance."""
    return shape.task()

  def combos(self) -> tuple[Combo, ...]:
    """The ``(hidden, num_steps)`` combinations sampling draws from."""
    held = set(self.held_out_combos)
    return tuple((h, t) for h in self.hidden for t in self.num_steps
                 if (h, t) not in held)

  def _draw(self, key: jax.Array, n: int) -> list[dict[str, Any]]:
    """``n`` independent draws of every field but the seed."""
    combos = self.combos()
    options = {"source": self.sources, "combo": combos,
               "batch_size": self.batch_sizes, "label_noise": self.label_noise,
               "max_train": self.max_train}
    keys = jax.random.split(key, len(options))
    picks = {name: np.asarray(jax.random.randint(k, (n,), 0, len(opts)))
             for k, (name, opts) in zip(keys, options.items())}
    out = []
    for i in range(n):
      (dataset, pool) = self.sources[picks["source"][i]]
      hidden, steps = combos[picks["combo"][i]]
      out.append(dict(
          dataset=dataset, pool=pool, hidden=hidden, num_steps=steps,
          batch_size=self.batch_sizes[picks["batch_size"][i]],
          label_noise=self.label_noise[picks["label_noise"][i]],
          max_train=self.max_train[picks["max_train"][i]],
          data_seed=self.data_seed))
    return out

  def sample(self, key: jax.Array, n: int) -> tuple[Instance, ...]:
    """``n`` independent instances (mixed shapes); deterministic in ``key``.

    Args:
      key: PRNG key.
      n: number of instances.

    Returns:
      A tuple of ``n`` instances; none is in :meth:`held_out`.
    """
    k_fields, k_seed = jax.random.split(key)
    seeds = _distinct_seeds(k_seed, n)
    return tuple(Instance(seed=s, **f)
                 for f, s in zip(self._draw(k_fields, n), seeds))

  def sample_group(self, key: jax.Array, n: int) -> tuple[Instance, ...]:
    """``n`` instances of one shape with distinct run seeds.

    A group trains as one vmapped program (:func:`group_val_loss_fn`).

    Args:
      key: PRNG key.
      n: number of instances.

    Returns:
      A tuple of ``n`` instances of equal :attr:`Instance.shape`.
    """
    k_fields, k_seed = jax.random.split(key)
    fields = self._draw(k_fields, 1)[0]
    return tuple(Instance(seed=s, **fields)
                 for s in _distinct_seeds(k_seed, n))

  def held_out(self) -> tuple[Instance, ...]:
    """The fixed held-out instances, the same for every call.

    For every source: one sampled-distribution network and budget (the
    middle entry of :meth:`combos`) and every held-out combination, each at
    the middle batch size, without label noise, on all training images, with
    ``held_out_seeds`` unseen run seeds.
    """
    combos = (self.combos()[len(self.combos()) // 2],) + self.held_out_combos
    batch = self.batch_sizes[len(self.batch_sizes) // 2]
    return tuple(
        Instance(dataset=d, pool=p, hidden=h, batch_size=batch, num_steps=t,
                 label_noise=0.0, max_train=None,
                 seed=HELD_OUT_SEED_BASE + s, data_seed=self.data_seed)
        for d, p in self.sources for h, t in combos
        for s in range(self.held_out_seeds))


def _distinct_seeds(key: jax.Array, n: int) -> list[int]:
  """``n`` distinct run seeds in ``[0, HELD_OUT_SEED_BASE)``."""
  seeds: list[int] = []
  attempt = 0
  while len(seeds) < n:
    draw = np.asarray(jax.random.randint(
        jax.random.fold_in(key, attempt), (n,), 0, HELD_OUT_SEED_BASE))
    for s in draw.tolist():
      if s not in seeds and len(seeds) < n:
        seeds.append(s)
    attempt += 1
  return seeds


# -- data ----------------------------------------------------------------------


def pool_images(images: np.ndarray, size: int, *, grayscale: bool = True
                ) -> np.ndarray:
  """Average-pools ``uint8[N, H, W, C]`` images to ``size`` x ``size``.

  Each output pixel is the mean of a ``H/size`` x ``W/size`` block, rounded
  to the nearest integer once at the end, so an image's mean intensity is
  kept to within half a grey level. With ``grayscale`` an RGB image becomes
  its BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` before pooling.

  Args:
    images: ``uint8[N, H, W, C]``.
    size: output side; must divide ``H`` and ``W``.
    grayscale: convert 3-channel images to one luma channel.

  Returns:
    ``uint8[N, size, size, C']`` with ``C' = 1`` for converted images.
  """
  x = np.asarray(images)
  if x.dtype != np.uint8 or x.ndim != 4:
    raise ValueError(f"expected uint8 images [N, H, W, C], got {x.dtype} "
                     f"{x.shape}")
  n, h, w, c = x.shape
  if size <= 0 or h % size or w % size:
    raise ValueError(f"size must divide the image side {h}x{w}, got {size}")
  to_gray = grayscale and c == 3
  out = np.empty((n, size, size, 1 if to_gray else c), np.uint8)
  for lo in range(0, n, _POOL_CHUNK):
    block = x[lo:lo + _POOL_CHUNK].astype(np.float32)
    if to_gray:
      block = block @ np.asarray(LUMA, np.float32)[:, None]
    m = block.shape[0]
    block = block.reshape(m, size, h // size, size, w // size, -1)
    out[lo:lo + m] = np.clip(np.rint(block.mean(axis=(2, 4))), 0, 255)
  return out


def pool_dataset(ds: Dataset, size: int, *, grayscale: bool = True
                 ) -> Dataset:
  """The dataset with every split pooled by :func:`pool_images`.

  The per-channel mean and standard deviation are recomputed from the pooled
  training images; labels, label noise and splits are unchanged.

  Args:
    ds: a loaded dataset (without augmentation: crops of pooled images are
      not meaningful).
    size: output side.
    grayscale: convert RGB to luma.

  Returns:
    A new :class:`~lrmeta.data.Dataset`.
  """
  if ds.augment != "none":
    raise ValueError(f"pool a dataset without augmentation, got "
                     f"{ds.augment!r}")
  pooled = {f: jnp.asarray(pool_images(np.asarray(getattr(ds, f)), size,
                                       grayscale=grayscale))
            for f in ("train_x", "val_x", "test_x")}
  flat = np.asarray(pooled["train_x"]).reshape(
      -1, pooled["train_x"].shape[-1]).astype(np.float64) / 255.0
  gray = grayscale and ds.train_x.shape[-1] == 3
  name = f"{ds.name}, {'grayscale ' if gray else ''}{size}x{size}"
  return dataclasses.replace(
      ds, name=name, mean=tuple(float(v) for v in flat.mean(axis=0)),
      std=tuple(float(v) for v in flat.std(axis=0)), **pooled)


@functools.lru_cache(maxsize=None)
def pooled_dataset(dataset: str, pool: int, max_train: int | None = None,
                   label_noise: float = 0.0, seed: int = 0) -> Dataset:
  """A grayscale pooled dataset, loaded once per process per argument set.

  Args:
    dataset: source dataset (``"fashion_mnist"`` or ``"cifar10"``, the
      offline JPEG copy).
    pool: output side.
    max_train: keep this many training images (``None``: all).
    label_noise: fraction of training labels redrawn at random.
    seed: seed of the validation split and of the label noise.

  Returns:
    A device-resident dataset with a :data:`VAL_SIZE`-image validation
    split.
  """
  ds = load_dataset(dataset, num_val=VAL_SIZE, seed=seed,
                    label_noise=label_noise, augment="none",
                    max_train=max_train)
  return pool_dataset(ds, pool, grayscale=True)


def instance_task(shape: Any) -> Task:
  """The task of a shape of any family: ``shape.task()``.

  For an :class:`Instance` that is the pooled MLP task (its seed is
  unused); a user family's shapes (:class:`lrmeta.tasks.protocol.Shape`
  subclasses) define their own ``task()``.
  """
  return shape.task()


__all__ = ["Family", "HELD_OUT_SEED_BASE", "Instance", "LUMA", "SOURCE_SIDE",
           "VAL_SIZE", "group_by_shape", "instance_task", "pool_dataset",
           "pool_images", "pooled_dataset"]
