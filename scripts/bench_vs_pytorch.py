"""lrmeta against the PyTorch loop a user would run instead, side by side.

Each row trains the same model on the same data with the same batch size and
the same rule on both sides, in one process, on the CPU: lrmeta's scanned
inner loop (``lrmeta.train.run_steps`` under ``jit``; a population under
``vmap``) against an eager PyTorch loop (``torch.optim`` or the rule written
as a ``torch.optim.Optimizer``). The PyTorch model starts from lrmeta's
initial weights, and both sides compute the loss of lrmeta's first minibatch,
so the comparison is of the same computation. Both sides hold the training
images in memory, normalised the same way, and draw a uniform minibatch per
step (no augmentation).

Rows (``lrmeta_over_torch``: lrmeta's training steps per second over
PyTorch's, medians of alternating timed blocks after a warm-up):

* ``sgd_small_cnn``: SGD with momentum 0.9, the small CNN (conv 5x5 16 and
  32 with 2x2 max-pools, dense 128) on Fashion-MNIST, batch 128;
* ``sgd_resnet8``: the same on ResNet-8 (BatchNorm with batch statistics) on
  CIFAR-10 (JPEG copy), batch 128;
* ``sgd_family_mlp_run``: one 200-step run of the task family's MLP 196-32-10
  (Fashion-MNIST pooled to 14x14), batch 64;
* ``sgd_family_mlp_population``: 64 such runs as one vmapped program against
  64 PyTorch runs one after another;
* ``hd_sgd_small_cnn`` / ``hd_adam_small_cnn``: hypergradient descent
  (Baydin et al. 2018, global rate, additive rule, the paper's code's
  defaults) around SGD / Adam, lrmeta's ``hd_sgd`` / ``hd_adam`` against the
  update written here for PyTorch from the paper's equations;
* ``mlr_snet_small_cnn``: MLR-SNet meta-test, SGD with momentum 0.9 and
  weight decay 5e-4 whose rate an LSTM computes from the loss at every step
  (the LSTM called eagerly per step in PyTorch, as in the paper's meta-test
  loop; ``mlr_snet_sgd`` scanned in lrmeta);
* ``mlr_snet_meta_train_small_cnn``: MLR-SNet meta-training by the authors'
  protocol on the same CNN: plain SGD (momentum 0, weight decay 5e-4) at the
  LSTM's rate every step and, every ``Config.every`` steps (10; 2 in
  ``--reduced``), a first-order one-step look-ahead: a virtual SGD step on
  that step's minibatch, the loss of the virtual weights on a meta batch of
  128 (the validation split), its gradient with respect to the LSTM through
  the rate alone, Adam (1e-3, L2 1e-4, no clipping) on the LSTM, then the
  real step with the updated LSTM. lrmeta: ``OnlineLookahead`` under
  ``MetaTrainer.step`` (``jit``), one call advancing to the next look-ahead
  point as the meta-train job drives it; PyTorch: the protocol written
  eagerly here (``torch.func.functional_call`` for the virtual step). Steps
  per second count real (inner) steps; each timed block holds
  ``steps // every`` look-aheads on both sides.

Threads: ``--threads N`` restricts the process to N CPUs (affinity, which
sizes XLA's intra-op thread pool) and sets ``torch.set_num_threads(N)``; the
default is every CPU the process may use. The JSON reports each side's CPU
time over wall time, i.e. how many cores it kept busy.

Needs PyTorch (``pip install -e '.[bench]'``). The last line printed is a
JSON object: ``lrmeta_over_torch`` (per row), ``lrmeta_steps_per_s``,
``torch_steps_per_s``, ``first_loss``, ``cores_busy``, ``threads``,
``device``, ``versions``, ``loadavg`` and ``mode``.

  python scripts/bench_vs_pytorch.py             # all rows (minutes)
  python scripts/bench_vs_pytorch.py --reduced   # tiny blocks (the test)
  python scripts/bench_vs_pytorch.py --rows sgd_small_cnn,hd_sgd_small_cnn

References:
  Baydin, Cornish, Martinez Rubio, Schmidt, Wood. Online learning rate
  adaptation with hypergradient descent. ICLR 2018 (arXiv:1703.04782).
  Shu, Zhu, Zhao, Meng, Xu. MLR-SNet: Transferable LR schedules for
  heterogeneous tasks. TPAMI 2022 (arXiv:2007.14546).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from typing import Any, Callable, NamedTuple

import numpy as np

MISSING_TORCH = ("bench_vs_pytorch needs PyTorch: pip install -e '.[bench]' "
                 "(or pip install torch)")


# -- configuration -------------------------------------------------------------


class Config(NamedTuple):
  """Sizes of one benchmark run.

  Attributes:
    steps: training steps per timed block of the CNN and ResNet rows.
    blocks: timed blocks per side (after one warm-up block).
    pop_blocks: timed blocks of the population row.
    max_train: training images kept in memory.
    family_steps: steps of one family MLP run.
    population: runs in the population row.
    every: look-ahead period of the MLR-SNet meta-training row, in inner
      steps (``steps`` must be a multiple: each block holds
      ``steps // every`` look-aheads).
  """

  steps: int = 20
  blocks: int = 5
  pop_blocks: int = 3
  max_train: int = 20_000
  family_steps: int = 200
  population: int = 64
  every: int = 10


FULL = Config()
REDUCED = Config(steps=2, blocks=2, pop_blocks=1, max_train=2_000,
                 family_steps=10, population=4, every=2)


# -- one side of a row ---------------------------------------------------------


class Side(NamedTuple):
  """One side of a row.

  Attributes:
    block: runs one timed block of training and returns when it is done.
    steps: training steps per block (all members of a population).
    first_loss: the loss of lrmeta's first minibatch at the initial weights.
  """

  block: Callable[[], None]
  steps: int
  first_loss: float


class Row(NamedTuple):
  lrmeta: Side
  torch: Side


def _lrmeta_side(task, make_opt, cfg_steps: int, key, *, population: int = 0
                 ) -> tuple[Side, Any]:
  """lrmeta's scanned (and, for a population, vmapped) loop.

  Returns the side and the initial train state (stacked for a population),
  whose parameters the PyTorch side copies.
  """
  import jax
  import jax.numpy as jnp
  from lrmeta.train import init_population, init_state, run_steps

  if population:
    keys = jax.random.split(key, population)
    hp = jnp.zeros((population,))
    s0 = init_population(task, lambda h: make_opt(), hp, keys)
    fn = jax.jit(jax.vmap(lambda s: run_steps(task, make_opt(), s,
                                              cfg_steps)))
    loss_of = lambda m: m["train_loss"][0, 0]
  else:
    s0 = init_state(task, make_opt(), key)
    fn = jax.jit(lambda s: run_steps(task, make_opt(), s, cfg_steps))
    loss_of = lambda m: m["train_loss"][0]
  state, metrics = fn(s0)  # warm-up: compiles
  jax.block_until_ready(state)
  first_loss = float(loss_of(metrics))
  box = [state]

  def block():
    box[0] = fn(box[0])[0]
    jax.block_until_ready(box[0])

  return Side(block, cfg_steps * max(population, 1), first_loss), s0


def _first_batch(task, state):
  """lrmeta's first minibatch of the run ``state`` starts (images NHWC)."""
  import jax
  batch = task.train_batch(jax.random.fold_in(state.key, state.step))
  return np.asarray(batch.image), np.asarray(batch.label)


def _torch_data(task, max_train: int, flat: bool = False):
  """The training images normalised as lrmeta does, as PyTorch tensors."""
  import torch
  ds = task.dataset
  x = np.asarray(ds.normalize(ds.train_x[:max_train]))
  x = x.reshape(x.shape[0], -1) if flat else x.transpose(0, 3, 1, 2)
  return (torch.from_numpy(np.array(x)),
          torch.from_numpy(np.array(ds.train_y[:max_train], np.int64)))


def _torch_side(model, optimizer, data, batch_size: int, steps: int,
                first_batch, *, before_step=None, flat: bool = False,
                seed: int = 0, warm_up: bool = True) -> Side:
  """An eager PyTorch loop: sample, forward, backward, ``optimizer.step()``.

  ``before_step(loss)`` (e.g. an LSTM setting the rate) runs between the
  backward pass and the step, as in the paper's meta-test loop.
  """
  import torch
  import torch.nn.functional as F
  x, y = data
  gen = torch.Generator().manual_seed(seed)
  xb, yb = first_batch
  xb = xb.reshape(xb.shape[0], -1) if flat else xb.transpose(0, 3, 1, 2)
  with torch.no_grad():
    first = F.cross_entropy(model(torch.from_numpy(np.array(xb))),
                            torch.from_numpy(np.array(yb, np.int64)))

  def step():
    idx = torch.randint(x.shape[0], (batch_size,), generator=gen)
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    if before_step is not None:
      before_step(loss.detach())
    optimizer.step()

  def block():
    for _ in range(steps):
      step()

  if warm_up:  # oneDNN primitive caches, the allocator
    block()
  return Side(block, steps, float(first))


# -- PyTorch models holding lrmeta's initial weights ---------------------------


def _t(a, *perm):
  import torch
  a = np.asarray(a, np.float32)
  return torch.from_numpy(np.array(a.transpose(*perm) if perm else a))


def _copy_conv(conv, p):
  conv.weight.data.copy_(_t(p["kernel"], 3, 2, 0, 1))  # HWIO -> OIHW
  if "bias" in p:
    conv.bias.data.copy_(_t(p["bias"]))


def _copy_dense(lin, p, chw: tuple[int, int, int] | None = None):
  """Flax ``[in, out]`` kernel into ``Linear``; ``chw`` reorders an input
  flattened from NHWC (Flax) to one flattened from NCHW (PyTorch)."""
  k = np.asarray(p["kernel"])
  if chw is not None:
    c, h, w = chw
    k = k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
  lin.weight.data.copy_(_t(k, 1, 0))
  lin.bias.data.copy_(_t(p["bias"]))


def _copy_bn(bn, p, stats):
  bn.weight.data.copy_(_t(p["scale"]))
  bn.bias.data.copy_(_t(p["bias"]))
  bn.running_mean.copy_(_t(stats["mean"]))
  bn.running_var.copy_(_t(stats["var"]))


def torch_small_cnn(params, in_ch: int, side: int, features=(16, 32),
                    hidden: int = 128, num_classes: int = 10):
  """:class:`lrmeta.models.SmallCNN` in PyTorch, holding ``params``."""
  import torch.nn as nn
  f1, f2 = features
  out_side = side // 4
  net = nn.Sequential(
      nn.Conv2d(in_ch, f1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(f1, f2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(), nn.Linear(f2 * out_side * out_side, hidden), nn.ReLU(),
      nn.Linear(hidden, num_classes))
  _copy_conv(net[0], params["Conv_0"])
  _copy_conv(net[3], params["Conv_1"])
  _copy_dense(net[7], params["Dense_0"], (f2, out_side, out_side))
  _copy_dense(net[9], params["Dense_1"])
  return net


def torch_mlp(params, in_dim: int, hidden=(32,), num_classes: int = 10):
  """:class:`lrmeta.models.MLP` in PyTorch, holding ``params``."""
  import torch.nn as nn
  layers, d = [], in_dim
  for i, h in enumerate(hidden):
    lin = nn.Linear(d, h)
    _copy_dense(lin, params[f"Dense_{i}"])
    layers += [lin, nn.ReLU()]
    d = h
  out = nn.Linear(d, num_classes)
  _copy_dense(out, params[f"Dense_{len(hidden)}"])
  return nn.Sequential(*layers, out)


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
  """XLA's "SAME" padding (before, after) of one spatial axis."""
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return total // 2, total - total // 2


def torch_resnet8(params, batch_stats, side: int = 32, width: int = 16,
                  num_classes: int = 10):
  """:func:`lrmeta.models.CifarResNet` (depth 8) in PyTorch, holding
  ``params`` and ``batch_stats``.

  A stride-2 3x3 convolution pads as XLA's "SAME" does (0 before, 1 after
  on an even side), not PyTorch's symmetric ``padding=1``; BatchNorm's
  momentum 0.1 is Flax's 0.9 in PyTorch's convention.
  """
  import torch.nn as nn
  import torch.nn.functional as F

  def bn(c, p, s):
    m = nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)
    _copy_bn(m, p, s)
    return m

  def conv(cin, cout, k, stride, p):
    m = nn.Conv2d(cin, cout, k, stride, padding=0 if stride > 1 else k // 2,
                  bias=False)
    _copy_conv(m, p)
    return m

  class Block(nn.Module):

    def __init__(self, cin, cout, stride, size, p, s):
      super().__init__()
      self.pad = _same_pad(size, 3, stride) if stride > 1 else None
      self.conv0 = conv(cin, cout, 3, stride, p["Conv_0"])
      self.bn0 = bn(cout, p["BatchNorm_0"], s["BatchNorm_0"])
      self.conv1 = conv(cout, cout, 3, 1, p["Conv_1"])
      self.bn1 = bn(cout, p["BatchNorm_1"], s["BatchNorm_1"])
      self.short = None
      if stride > 1 or cin != cout:
        self.short = nn.Sequential(conv(cin, cout, 1, stride, p["Conv_2"]),
                                   bn(cout, p["BatchNorm_2"],
                                      s["BatchNorm_2"]))

    def forward(self, x):
      y = x if self.pad is None else F.pad(x, (*self.pad, *self.pad))
      y = F.relu(self.bn0(self.conv0(y)))
      y = self.bn1(self.conv1(y))
      return F.relu((x if self.short is None else self.short(x)) + y)

  class Net(nn.Module):

    def __init__(self):
      super().__init__()
      self.stem = conv(3, width, 3, 1, params["Conv_0"])
      self.bn = bn(width, params["BatchNorm_0"], batch_stats["BatchNorm_0"])
      blocks, cin, size = [], width, side
      for i, w in enumerate((width, 2 * width, 4 * width)):
        stride = 2 if i else 1
        name = f"BasicBlock_{i}"
        blocks.append(Block(cin, w, stride, size, params[name],
                            batch_stats[name]))
        cin, size = w, -(-size // stride)
      self.blocks = nn.Sequential(*blocks)
      self.fc = nn.Linear(cin, num_classes)
      _copy_dense(self.fc, params["Dense_0"])

    def forward(self, x):
      x = F.relu(self.bn(self.stem(x)))
      return self.fc(self.blocks(x).mean(dim=(2, 3)))

  return Net()


# -- rules written for PyTorch from the papers' equations ----------------------


def torch_hd(params, *, lr: float, hyper_lr: float, adam: bool = False,
             b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
             min_lr: float = 1e-8, max_lr: float = 10.0):
  """HD-SGD or HD-Adam (global rate, additive rule) as a PyTorch optimizer.

  With ``u_t`` the base's unit-rate update (``-g_t`` for SGD,
  ``-m_hat_t / (sqrt(v_hat_t) + eps)`` for Adam), each step:

  .. math::

    h_t = g_t \\cdot u_{t-1}, \\quad
    \\alpha_t = \\mathrm{clip}(\\alpha_{t-1} - \\beta h_t), \\quad
    \\theta_t = \\theta_{t-1} + \\alpha_t u_t.

  References:
    Baydin et al., ICLR 2018 (arXiv:1703.04782), Algorithms 1 and 2.
  """
  import torch

  class HD(torch.optim.Optimizer):

    def __init__(self, ps):
      super().__init__(ps, {"lr": lr})
      plist = self.param_groups[0]["params"]
      n = sum(p.numel() for p in plist)
      self.u_prev = torch.zeros(n)
      self.m = torch.zeros(n) if adam else None
      self.v = torch.zeros(n) if adam else None
      self.t = 0

    @torch.no_grad()
    def step(self, closure=None):
      del closure
      group = self.param_groups[0]
      plist = group["params"]
      g = torch.cat([p.grad.reshape(-1) for p in plist])
      h = torch.dot(g, self.u_prev).item()
      group["lr"] = min(max(group["lr"] - hyper_lr * h, min_lr), max_lr)
      self.t += 1
      if adam:
        self.m.mul_(b1).add_(g, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat = self.m / (1 - b1 ** self.t)
        v_hat = self.v / (1 - b2 ** self.t)
        u = -m_hat / (v_hat.sqrt() + eps)
      else:
        u = -g
      self.u_prev = u
      torch._foreach_add_(plist, [d.view_as(p) for d, p in zip(
          u.split([p.numel() for p in plist]), plist)], alpha=group["lr"])

  return HD(params)


def torch_mlr_snet(theta, semantics: str = "meta_test"):
  """The MLR-SNet LSTM of :func:`lrmeta.controllers.mlr_snet_cell` in
  PyTorch, holding ``theta``: called on a loss, returns ``sigmoid`` output
  in (0, 1) and carries ``(h, c)``.

  The gate-MLP width is read from ``theta``; ``semantics`` is the cell's
  (``"meta_test"``, lrmeta's default: gates in, forget, transform, out;
  ``"meta_train"``: in, forget, out, transform with ``sigmoid(f - 1)``).

  References:
    Shu et al., TPAMI 2022 (arXiv:2007.14546).
  """
  import torch
  import torch.nn as nn
  if semantics not in ("meta_test", "meta_train"):
    raise ValueError(f"unknown semantics {semantics!r}")

  def mlp(p):
    a, b = nn.Linear(*np.shape(p["w1"])), nn.Linear(*np.shape(p["w2"]))
    for lin, w, bias in ((a, p["w1"], p["b1"]), (b, p["w2"], p["b2"])):
      lin.weight.data.copy_(_t(w, 1, 0))
      lin.bias.data.copy_(_t(bias))
    return nn.Sequential(a, nn.ReLU(), b)

  class Cell(nn.Module):

    def __init__(self):
      super().__init__()
      self.i2h, self.h2h = mlp(theta["i2h"]), mlp(theta["h2h"])
      self.out = nn.Linear(*np.shape(theta["out"]["w"]))
      self.out.weight.data.copy_(_t(theta["out"]["w"], 1, 0))
      self.out.bias.data.copy_(_t(theta["out"]["b"]))
      self.hidden = self.out.in_features
      self.h = torch.zeros(self.hidden)
      self.c = torch.zeros(self.hidden)

    def forward(self, loss):
      gates = self.i2h(loss.reshape(1)) + self.h2h(self.h)
      if semantics == "meta_test":
        i, f, g, o = gates.split(self.hidden)
        forget = torch.sigmoid(f)
      else:
        i, f, o, g = gates.split(self.hidden)
        forget = torch.sigmoid(f - 1.0)
      self.c = forget * self.c + torch.sigmoid(i) * torch.tanh(g)
      self.h = torch.sigmoid(o) * torch.tanh(self.c)
      return torch.sigmoid(self.out(self.h))[0]

  return Cell()


class TorchMLRSNetMetaTrain:
  """MLR-SNet meta-training (the authors' protocol) written for PyTorch.

  ``step(xb, yb, meta)`` is one inner step on the minibatch ``(xb, yb)``;
  with a meta batch ``meta = (xm, ym)`` it first takes the look-ahead: a
  virtual SGD step on the same minibatch (gradient and weight decay at the
  current weights, rate ``gamma * cell(loss)``) written functionally, the
  meta-loss of the virtual weights on the meta batch, its gradient with
  respect to the LSTM weights through the rate alone (first order: the
  minibatch gradient is a constant), and one Adam step (``meta_lr``, L2
  ``meta_weight_decay``) on the LSTM. The LSTM keeps the state the virtual
  step left, and the real step calls it again on the same loss with the
  updated weights. ``gamma`` comes from the first loss (``num_classes``).

  References:
    Shu et al., TPAMI 2022 (arXiv:2007.14546), the meta-training algorithm.
  """

  def __init__(self, model, cell, *, weight_decay: float = 5e-4,
               meta_lr: float = 1e-3, meta_weight_decay: float = 1e-4,
               num_classes: int = 10):
    import torch
    self.model, self.cell, self.wd = model, cell, weight_decay
    self.num_classes = num_classes
    self.opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.0,
                               weight_decay=weight_decay)
    self.meta_opt = torch.optim.Adam(cell.parameters(), lr=meta_lr,
                                     weight_decay=meta_weight_decay)
    self.gamma = None
    self.lr = None  # the rate of the last real step

  def _gamma(self, loss) -> float:
    if self.gamma is None:
      from lrmeta.controllers import compute_gamma
      self.gamma = float(compute_gamma(float(loss.detach()),
                                       self.num_classes))
    return self.gamma

  def lookahead(self, xb, yb, xm, ym) -> float:
    """The virtual step and the LSTM's Adam step; returns the meta-loss."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call
    params = dict(self.model.named_parameters())
    loss = F.cross_entropy(self.model(xb), yb)
    grads = torch.autograd.grad(loss, list(params.values()))
    lr = self._gamma(loss) * self.cell(loss.detach())
    virtual = {n: p.detach() - lr * (g + self.wd * p.detach())
               for (n, p), g in zip(params.items(), grads)}
    meta_loss = F.cross_entropy(functional_call(self.model, virtual, (xm,)),
                                ym)
    self.meta_opt.zero_grad(set_to_none=True)
    meta_loss.backward()
    self.meta_opt.step()
    self.cell.h, self.cell.c = self.cell.h.detach(), self.cell.c.detach()
    return float(meta_loss.detach())

  def step(self, xb, yb, meta=None) -> float:
    """One inner step (after the look-ahead when ``meta`` is given);
    returns the minibatch loss."""
    import torch
    import torch.nn.functional as F
    if meta is not None:
      self.lookahead(xb, yb, *meta)
    self.opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(self.model(xb), yb)
    loss.backward()
    with torch.no_grad():
      self.lr = self._gamma(loss) * float(self.cell(loss.detach()))
    for group in self.opt.param_groups:
      group["lr"] = self.lr
    self.opt.step()
    return float(loss.detach())


# -- rows: each builds its two sides -------------------------------------------


class Data(NamedTuple):
  fmnist: Any
  cifar10: Any
  family: Any


def _cnn_task(data, batch_size: int):
  from lrmeta.tasks import make_task
  return make_task("fashion_mnist", "small_cnn", batch_size=batch_size,
                   data=data.fmnist)


def _cnn_row(cfg: Config, data: Data, make_opt, make_torch_opt,
             before_step_of=None) -> Row:
  """The small CNN on Fashion-MNIST (batch 128) under one rule."""
  import jax
  task = _cnn_task(data, 128)
  side, s0 = _lrmeta_side(task, make_opt, cfg.steps, jax.random.key(0))
  model = torch_small_cnn(s0.params, 1, 28)
  opt = make_torch_opt(model.parameters())
  hook = before_step_of(opt) if before_step_of else None
  return Row(side, _torch_side(model, opt, _torch_data(task, cfg.max_train),
                               128, cfg.steps, _first_batch(task, s0),
                               before_step=hook))


def _sgd_momentum():
  import optax
  return optax.sgd(0.05, momentum=0.9)


def _torch_sgd_momentum(ps):
  import torch
  return torch.optim.SGD(ps, lr=0.05, momentum=0.9)


def row_sgd_small_cnn(cfg: Config, data: Data) -> Row:
  return _cnn_row(cfg, data, _sgd_momentum, _torch_sgd_momentum)


def row_sgd_resnet8(cfg: Config, data: Data) -> Row:
  import jax
  from lrmeta.tasks import make_task
  task = make_task("cifar10", "resnet8", batch_size=128, data=data.cifar10)
  side, s0 = _lrmeta_side(task, _sgd_momentum, cfg.steps, jax.random.key(0))
  model = torch_resnet8(s0.params, s0.model_state["batch_stats"])
  model.train()
  opt = _torch_sgd_momentum(model.parameters())
  return Row(side, _torch_side(model, opt, _torch_data(task, cfg.max_train),
                               128, cfg.steps, _first_batch(task, s0)))


def _family_task(data):
  from lrmeta.models import make_model
  from lrmeta.tasks.base import Task
  net = make_model("mlp", 10, hidden=(32,))
  return Task("fashion_mnist14/mlp32", data.family, net, batch_size=64)


def row_sgd_family_mlp_run(cfg: Config, data: Data) -> Row:
  import jax
  task = _family_task(data)
  side, s0 = _lrmeta_side(task, _sgd_momentum, cfg.family_steps,
                          jax.random.key(0))
  model = torch_mlp(s0.params, 196)
  return Row(side, _torch_side(
      model, _torch_sgd_momentum(model.parameters()),
      _torch_data(task, cfg.max_train, flat=True), 64, cfg.family_steps,
      _first_batch(task, s0), flat=True))


def row_sgd_family_mlp_population(cfg: Config, data: Data) -> Row:
  """K vmapped runs against K PyTorch runs one after another (each from
  its own member's initial weights)."""
  import jax
  task = _family_task(data)
  side, s0 = _lrmeta_side(task, _sgd_momentum, cfg.family_steps,
                          jax.random.key(0), population=cfg.population)
  tdata = _torch_data(task, cfg.max_train, flat=True)
  member = lambda i: jax.tree.map(lambda a: a[i], s0)
  runs = []
  for i in range(cfg.population):
    si = member(i)
    model = torch_mlp(si.params, 196)
    runs.append(_torch_side(model, _torch_sgd_momentum(model.parameters()),
                            tdata, 64, cfg.family_steps,
                            _first_batch(task, si), flat=True, seed=i,
                            warm_up=i == 0))

  def block():
    for r in runs:
      r.block()

  return Row(side, Side(block, cfg.family_steps * cfg.population,
                        runs[0].first_loss))


def row_hd_sgd_small_cnn(cfg: Config, data: Data) -> Row:
  from lrmeta.controllers import hd_sgd
  return _cnn_row(cfg, data, lambda: hd_sgd(1e-3, 1e-3),
                  lambda ps: torch_hd(ps, lr=1e-3, hyper_lr=1e-3))


def row_hd_adam_small_cnn(cfg: Config, data: Data) -> Row:
  from lrmeta.controllers import hd_adam
  return _cnn_row(cfg, data, lambda: hd_adam(1e-3, 1e-7),
                  lambda ps: torch_hd(ps, lr=1e-3, hyper_lr=1e-7, adam=True))


def row_mlr_snet_small_cnn(cfg: Config, data: Data) -> Row:
  """Meta-test of an (untrained) MLR-SNet: the rate is computed every step;
  ``gamma`` comes from the first loss on both sides."""
  import jax
  import torch
  from lrmeta.controllers import (compute_gamma, init_mlr_snet_params,
                                  mlr_snet_sgd)
  theta = init_mlr_snet_params(jax.random.key(1))
  cell = torch_mlr_snet(theta)

  def before_step_of(opt):
    gamma = []

    @torch.no_grad()
    def set_rate(loss):
      if not gamma:
        gamma.append(float(compute_gamma(float(loss), 10)))
      lr = gamma[0] * cell(loss)
      for group in opt.param_groups:
        group["lr"] = float(lr)
    return set_rate

  return _cnn_row(
      cfg, data, lambda: mlr_snet_sgd(theta, momentum=0.9),
      lambda ps: torch.optim.SGD(ps, lr=0.0, momentum=0.9,
                                 weight_decay=5e-4),
      before_step_of)


def row_mlr_snet_meta_train_small_cnn(cfg: Config, data: Data) -> Row:
  """Meta-training of MLR-SNet with the authors' first-order look-ahead
  every ``cfg.every`` steps (see the module docstring); both sides start
  from the same CNN and LSTM weights, ``gamma`` from the first loss."""
  import jax
  import torch
  import torch.nn.functional as F
  from lrmeta.controllers import init_mlr_snet_params, mlr_snet_sgd
  from lrmeta.meta import (MetaTrainer, OnlineLookahead, TaskProblem,
                           default_meta_optimizer)
  every, wd, meta_batch = cfg.every, 5e-4, 128
  if cfg.steps % every:
    raise ValueError(f"steps {cfg.steps} is not a multiple of every {every}")
  task = _cnn_task(data, 128)
  theta = init_mlr_snet_params(jax.random.key(1))

  # lrmeta: the meta-train job's objects (configs/mlrsnet_fmnist.py
  # "official": momentum 0, meta batch 128 in train mode, no clipping).
  problem = TaskProblem(
      task, lambda th: mlr_snet_sgd(th, momentum=0.0, weight_decay=wd),
      meta_batch_size=meta_batch, meta_train_mode=True)
  trainer = MetaTrainer(
      [OnlineLookahead(problem, horizon=2 ** 30, every=every)],
      default_meta_optimizer(1e-3, 1e-4), clip_norm=None)
  meta_step = jax.jit(trainer.step)
  ms0 = trainer.init(theta, jax.random.key(0))
  s0 = jax.tree.map(lambda a: a[0], ms0.estimator_states[0].inner)
  batch = task.train_batch(jax.random.fold_in(s0.key, s0.step))
  l_first = float(jax.jit(lambda s, b: task.loss(s.params, s.model_state, b)
                          [0])(s0, batch))
  ms, _ = meta_step(ms0)  # compiles; steps 0 .. every - 2, first look-ahead
  ms, m = meta_step(ms)
  jax.block_until_ready(ms)
  if float(m["real_steps"]) != every:
    raise RuntimeError(f"one call took {float(m['real_steps'])} real steps, "
                       f"not {every}")
  box = [ms]
  calls = cfg.steps // every

  def l_block():
    for _ in range(calls):
      box[0] = meta_step(box[0])[0]
    jax.block_until_ready(box[0])

  # PyTorch: the same protocol, eager.
  model = torch_small_cnn(s0.params, 1, 28)
  cell = torch_mlr_snet(theta)
  x, y = _torch_data(task, cfg.max_train)
  ds = task.dataset
  vx = torch.from_numpy(np.array(np.asarray(ds.normalize(ds.val_x))
                                 .transpose(0, 3, 1, 2)))
  vy = torch.from_numpy(np.array(ds.val_y, np.int64))
  learner = TorchMLRSNetMetaTrain(model, cell, weight_decay=wd)
  gen = torch.Generator().manual_seed(0)
  xb, yb = _first_batch(task, s0)
  with torch.no_grad():
    t_first = float(F.cross_entropy(
        model(torch.from_numpy(np.array(xb.transpose(0, 3, 1, 2)))),
        torch.from_numpy(np.array(yb, np.int64))))
  count = [0]

  def t_step():
    idx = torch.randint(x.shape[0], (128,), generator=gen)
    meta = None
    if (count[0] + 1) % every == 0:
      m_idx = torch.randint(vx.shape[0], (meta_batch,), generator=gen)
      meta = (vx[m_idx], vy[m_idx])
    count[0] += 1
    learner.step(x[idx], y[idx], meta)

  def t_block():
    for _ in range(cfg.steps):
      t_step()

  t_block()  # warm-up
  return Row(Side(l_block, cfg.steps, l_first),
             Side(t_block, cfg.steps, t_first))


ROWS: dict[str, Callable[[Config, Data], Row]] = {
    "sgd_small_cnn": row_sgd_small_cnn,
    "sgd_resnet8": row_sgd_resnet8,
    "sgd_family_mlp_run": row_sgd_family_mlp_run,
    "sgd_family_mlp_population": row_sgd_family_mlp_population,
    "hd_sgd_small_cnn": row_hd_sgd_small_cnn,
    "hd_adam_small_cnn": row_hd_adam_small_cnn,
    "mlr_snet_small_cnn": row_mlr_snet_small_cnn,
    "mlr_snet_meta_train_small_cnn": row_mlr_snet_meta_train_small_cnn,
}


# -- timing --------------------------------------------------------------------


def time_row(row: Row, blocks: int) -> dict[str, Any]:
  """Median steps/s of each side over ``blocks`` alternating blocks (the
  side that goes first alternates), and the cores each kept busy (process
  CPU time over wall time, summed over its blocks)."""
  sides = {"lrmeta": row.lrmeta, "torch": row.torch}
  rates = {k: [] for k in sides}
  wall = {k: 0.0 for k in sides}
  cpu = {k: 0.0 for k in sides}
  for b in range(blocks):
    order = ("lrmeta", "torch") if b % 2 == 0 else ("torch", "lrmeta")
    for k in order:
      t, c = time.perf_counter(), time.process_time()
      sides[k].block()
      dt, dc = time.perf_counter() - t, time.process_time() - c
      rates[k].append(sides[k].steps / dt)
      wall[k] += dt
      cpu[k] += dc
  return {k: {"steps_per_s": float(np.median(rates[k])),
              "cores_busy": cpu[k] / wall[k]} for k in sides}


# -- setup ---------------------------------------------------------------------


def set_threads(threads: int | None) -> int:
  """Pins the process to ``threads`` CPUs and PyTorch to as many threads.

  Must run before JAX starts its CPU client: XLA sizes its intra-op thread
  pool by the CPUs the process may run on.
  """
  import torch
  allowed = sorted(os.sched_getaffinity(0))
  n = len(allowed) if threads is None else threads
  if not 1 <= n <= len(allowed):
    raise SystemExit(f"--threads must be in [1, {len(allowed)}], got {n}")
  os.sched_setaffinity(0, allowed[:n])
  torch.set_num_threads(n)
  return n


def load_data(cfg: Config, rows) -> Data:
  """Loads once the datasets the chosen rows need (``None`` for the rest);
  CIFAR-10 without augmentation, as both sides sample it."""
  from lrmeta.data import load_dataset
  from lrmeta.tasks.family import pooled_dataset
  need = lambda word: any(word in r for r in rows)
  fmnist = (load_dataset("fashion_mnist", max_train=cfg.max_train)
            if need("cnn") else None)
  cifar = (load_dataset("cifar10", max_train=cfg.max_train, augment="none")
           if need("resnet8") else None)
  family = (pooled_dataset("fashion_mnist", 14, cfg.max_train)
            if need("family") else None)
  return Data(fmnist, cifar, family)


def _cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--reduced", action="store_true",
                 help="tiny blocks and populations (checks, not timings)")
  p.add_argument("--rows", default=",".join(ROWS),
                 help=f"comma-separated subset of {','.join(ROWS)}")
  p.add_argument("--threads", type=int, default=None,
                 help="CPUs for both sides (default: all the process may "
                      "use)")
  args = p.parse_args(argv)
  rows = [r for r in args.rows.split(",") if r]
  unknown = [r for r in rows if r not in ROWS]
  if unknown:
    raise SystemExit(f"unknown rows {unknown}; choose from {list(ROWS)}")
  try:
    import torch
  except ImportError:
    raise SystemExit(MISSING_TORCH) from None
  set_threads(args.threads)
  import jax
  jax.config.update("jax_platforms", "cpu")
  cfg = REDUCED if args.reduced else FULL
  t0 = time.perf_counter()
  data = load_data(cfg, rows)
  results = {}
  print(f"{'row':<31}{'lrmeta/s':>10}{'torch/s':>10}{'ratio':>8}"
        f"{'cores l/t':>11}{'first loss l / t':>22}", flush=True)
  for name in rows:
    row = ROWS[name](cfg, data)
    blocks = cfg.pop_blocks if "population" in name else cfg.blocks
    r = time_row(row, blocks)
    r["first_loss"] = [row.lrmeta.first_loss, row.torch.first_loss]
    results[name] = r
    ratio = r["lrmeta"]["steps_per_s"] / r["torch"]["steps_per_s"]
    print(f"{name:<31}{r['lrmeta']['steps_per_s']:>10.1f}"
          f"{r['torch']['steps_per_s']:>10.1f}{ratio:>8.3f}"
          f"{r['lrmeta']['cores_busy']:>6.2f}/{r['torch']['cores_busy']:.2f}"
          f"{r['first_loss'][0]:>12.6f} / {r['first_loss'][1]:.6f}",
          flush=True)
  out = {
      "lrmeta_over_torch": {k: round(v["lrmeta"]["steps_per_s"]
                                     / v["torch"]["steps_per_s"], 4)
                            for k, v in results.items()},
      "lrmeta_steps_per_s": {k: round(v["lrmeta"]["steps_per_s"], 3)
                             for k, v in results.items()},
      "torch_steps_per_s": {k: round(v["torch"]["steps_per_s"], 3)
                            for k, v in results.items()},
      "first_loss": {k: v["first_loss"] for k, v in results.items()},
      "cores_busy": {k: [round(v["lrmeta"]["cores_busy"], 2),
                         round(v["torch"]["cores_busy"], 2)]
                     for k, v in results.items()},
      "threads": {"torch": torch.get_num_threads(),
                  "xla_cpus": len(os.sched_getaffinity(0))},
      "device": f"{jax.devices()[0].platform}: {_cpu_name()}",
      "versions": {"jax": jax.__version__, "torch": torch.__version__,
                   "python": sys.version.split()[0]},
      "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
      "mode": "reduced" if args.reduced else "full",
      "wall_s": round(time.perf_counter() - t0, 1),
  }
  print(json.dumps(out))


if __name__ == "__main__":
  main()
