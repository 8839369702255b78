"""Optimizer chains from configuration."""

from __future__ import annotations

import optax

from lrmeta.experiments.compare import FamilyMethod, Method
from lrmeta.train.state import loss_signal

BASE_OPTIMIZERS = ("sgd", "adam")
SIMPLE_SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")
WARMUP_FRACTION = 0.05  # of the budget, for "warmup_cosine"


def simple_schedule(name: str, lr: float, num_steps: int) -> optax.Schedule:
  """The classic baselines: constant, cosine decay, step decay (x0.1 at 50 %
  and 75 % of the budget, the usual ImageNet/CIFAR milestones), and cosine
  decay after a linear warm-up from 0 over the first 5 % of the budget (at
  least one step), reaching 0 at ``num_steps``."""
  if name == "constant":
    return optax.constant_schedule(lr)
  if name == "cosine":
    return optax.cosine_decay_schedule(lr, num_steps)
  if name == "warmup_cosine":
    warmup = max(1, int(WARMUP_FRACTION * num_steps))
    if num_steps <= warmup:
      raise ValueError(f"warmup_cosine needs a budget of at least 2 steps, "
                       f"got {num_steps}")
    # Built at peak 1 and scaled: optax compares the peak with 0 in Python,
    # which a traced (tuned) rate cannot do.
    unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, num_steps)
    return lambda count: lr * unit(count)
  if name == "step":
    return optax.piecewise_constant_schedule(
        lr, {int(0.5 * num_steps): 0.1, int(0.75 * num_steps): 0.1})
  raise ValueError(f"unknown schedule {name!r}; choose one of "
                   f"{SIMPLE_SCHEDULES}")


def base_optimizer(name: str, learning_rate, *, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """SGD (with momentum) or Adam, with optional decoupled L2 weight decay,
  wrapped in ``inject_hyperparams`` so the applied rate is recorded."""
  if name not in BASE_OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r}; choose one of "
                     f"{BASE_OPTIMIZERS}")

  def make(learning_rate):
    core = (optax.sgd(learning_rate, momentum=momentum or None)
            if name == "sgd" else optax.adam(learning_rate))
    if weight_decay:
      return optax.chain(optax.add_decayed_weights(weight_decay), core)
    return core

  return optax.inject_hyperparams(make)(learning_rate=learning_rate)


# -- any controller from one string --------------------------------------------

# Online controllers that need no training, by the name used in configs; the
# call's keyword arguments go to the factory (``momentum`` and weight decay
# come from the config's optimizer section unless given).
def _controllers():
  # pylint: disable=import-outside-toplevel
  from lrmeta.controllers import hypergradient as hd
  from lrmeta.controllers import self_adaptive as sa
  return {"hd_sgd": hd.hd_sgd, "hd_sgdn": hd.hd_sgdn, "hd_adam": hd.hd_adam,
          "self_adaptive_sgd": sa.self_adaptive_sgd,
          "self_adaptive_adam": sa.self_adaptive_adam}


def parse_call(text: str) -> tuple[str, dict]:
  """``"name(a=1, b='x')"`` -> ``("name", {"a": 1, "b": "x"})`` (literals
  only; a bare ``"name"`` has no arguments)."""
  import ast  # pylint: disable=import-outside-toplevel
  try:
    node = ast.parse(text.strip(), mode="eval").body
  except SyntaxError as e:
    raise ValueError(f"cannot parse controller {text!r}: {e.msg}") from None
  if isinstance(node, ast.Name):
    return node.id, {}
  if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and not node.args):
    raise ValueError(f"controller {text!r} must read name(key=value, ...)")
  kwargs = {}
  for kw in node.keywords:
    try:
      kwargs[kw.arg] = ast.literal_eval(kw.value)
    except ValueError:
      raise ValueError(f"controller {text!r}: field {kw.arg!r} is not a "
                       f"literal") from None
  return node.func.id, kwargs


def method_optimizer(method: str, *, optimizer: str = "sgd",
                     learning_rate: float = 0.05, momentum: float = 0.9,
                     weight_decay: float = 0.0, num_steps: int = 1000
                     ) -> optax.GradientTransformation:
  """The optimizer chain one entry of a config's ``methods`` describes.

  Accepted forms (the string is also the method's name in every table):

  * ``"constant"``, ``"cosine"``, ``"step"``, ``"warmup_cosine"``: the
    classic schedules at peak ``learning_rate`` (:func:`simple_schedule`) on
    the base optimizer;
  * an LRBench policy spec, single or composite, e.g.
    ``"tri2(k0=0.01, k1=0.1, l=100)[200] -> exp(k0=0.05, gamma=0.99)"``
    (:mod:`lrmeta.schedules.spec`) on the base optimizer;
  * an online controller call, e.g. ``"hd_sgd(initial_learning_rate=0.005,
    hyper_lr=1e-3, rule='multiplicative')"`` (:func:`_controllers` lists
    the names); SGD controllers get the config's momentum unless given;
  * ``"ckpt:PATH"``: a learned controller saved with
    :func:`lrmeta.learned.save`, applied frozen (:func:`lrmeta.learned.
    frozen`; :func:`build_method` also returns the signals it reads).

  Weight decay (if any) is chained in front of every form.
  """
  return build_method(method, optimizer=optimizer,
                      learning_rate=learning_rate, momentum=momentum,
                      weight_decay=weight_decay,
                      num_steps=num_steps).make_optimizer(learning_rate)


def build_method(method: str, *, optimizer: str = "sgd",
                 learning_rate: float = 0.05, momentum: float = 0.9,
                 weight_decay: float = 0.0, num_steps: int = 1000,
                 num_classes: int | None = None) -> Method:
  """The :class:`~lrmeta.experiments.compare.Method` of one ``methods``
  entry (forms as in :func:`method_optimizer`), at the fixed base rate
  ``learning_rate``; a saved controller brings its own signals."""
  tx, signals = None, loss_signal
  if method.startswith("ckpt:"):
    from lrmeta import learned  # pylint: disable=import-outside-toplevel
    tx, signals = learned.frozen(method[len("ckpt:"):], num_steps,
                                 num_classes=num_classes)
  elif method in SIMPLE_SCHEDULES:
    tx = base_optimizer(optimizer, simple_schedule(method, learning_rate,
                                                   num_steps),
                        momentum=momentum, weight_decay=weight_decay)
    return Method(lambda _: tx, lr=learning_rate, tune=False)
  else:
    controllers = _controllers()
    try:
      name, kwargs = parse_call(method)
    except ValueError:  # e.g. a composite policy "a(...)[n] -> b(...)"
      name, kwargs = None, {}
    if name in controllers:
      if name.endswith("_sgd") or name == "hd_sgdn":
        kwargs.setdefault("momentum", momentum or None)
      try:
        tx = controllers[name](**kwargs)
      except (TypeError, ValueError) as e:
        raise ValueError(f"controller {method!r}: {e}") from None
    else:
      from lrmeta.schedules import (PolicyError, parse_spec,  # pylint: disable=import-outside-toplevel
                                    schedule_from_spec)
      try:
        sched = schedule_from_spec(parse_spec(method))
      except PolicyError as e:
        raise ValueError(
            f"method {method!r} is neither a schedule {SIMPLE_SCHEDULES}, a "
            f"controller {sorted(controllers)}, 'ckpt:PATH', nor a valid "
            f"LRBench policy: {e}") from None
      tx = base_optimizer(optimizer, sched, momentum=momentum,
                          weight_decay=weight_decay)
      return Method(lambda _: tx, lr=learning_rate, tune=False)
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
  return Method(lambda _: tx, signals, lr=None, tune=False)


def schedule_method(kind: str, num_steps: int, *, optimizer: str = "sgd",
                    momentum: float = 0.9, weight_decay: float = 0.0
                    ) -> Method:
  """A classic schedule (:func:`simple_schedule`) whose peak rate is tuned
  by :func:`lrmeta.experiments.compare.compare`."""
  return Method(lambda lr: base_optimizer(
      optimizer, simple_schedule(kind, lr, num_steps), momentum=momentum,
      weight_decay=weight_decay))


def family_baselines(momentum: float = 0.9) -> dict[str, FamilyMethod]:
  """The classic schedules on SGD with momentum for
  :func:`lrmeta.experiments.compare.compare_family`: constant, step, cosine
  and warmup_cosine, each decaying over its shape's budget, peak rate
  tuned."""
  def make(kind):
    return lambda shape: schedule_method(kind, shape.num_steps,
                                         momentum=momentum)
  return {kind: make(kind)
          for kind in ("constant", "step", "cosine", "warmup_cosine")}
