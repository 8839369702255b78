"""Optimizer chains from configuration."""

from __future__ import annotations

import optax

from lrmeta.protocol.methods import Method, base_optimizer
from lrmeta.schedules.baselines import (BASELINES, baseline_call,
                                        baseline_schedule)
from lrmeta.schedules.spec import parse_call
from lrmeta.train.state import loss_signal

SIMPLE_SCHEDULES = BASELINES


def simple_schedule(name: str, lr, num_steps: int, **options
                    ) -> optax.Schedule:
  """The baseline ``name`` (:data:`SIMPLE_SCHEDULES`) at peak ``lr`` over
  ``num_steps`` steps (:func:`lrmeta.schedules.baselines.
  baseline_schedule`; ``options`` such as ``decay_fraction``)."""
  return baseline_schedule(name, lr, num_steps, **options)


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


def method_optimizer(method: str, *, optimizer: str = "sgd",
                     learning_rate: float = 0.05, momentum: float = 0.9,
                     weight_decay: float = 0.0, num_steps: int = 1000
                     ) -> optax.GradientTransformation:
  """The optimizer chain one entry of a config's ``methods`` describes.

  Accepted forms (the string is also the method's name in every table):

  * ``"constant"``, ``"step"``, ``"cosine"``, ``"warmup_cosine"``,
    ``"linear"``, ``"wsd"``: the baseline schedules at peak
    ``learning_rate`` (:func:`simple_schedule`) on the base optimizer, bare
    or with their options, e.g. ``"wsd(decay_fraction=0.3)"``,
    ``"linear(warmup_fraction=0.05)"``;
  * an LRBench policy spec, single or composite, e.g.
    ``"tri2(k0=0.01, k1=0.1, l=100)[200] -> exp(k0=0.05, gamma=0.99)"``
    (:mod:`lrmeta.schedules.spec`) on the base optimizer;
  * an online controller call, e.g. ``"hd_sgd(initial_learning_rate=0.005,
    hyper_lr=1e-3, rule='multiplicative')"`` (:func:`_controllers` lists
    the names); SGD controllers get the config's momentum unless given;
  * ``"ckpt:PATH"``: a learned controller saved with
    :func:`lrmeta.learned.save`, applied frozen (:func:`lrmeta.learned.
    frozen`; :func:`build_method` also returns the signals it reads);
  * ``"pretrained:NAME"``: a controller shipped with the package
    (:mod:`lrmeta.pretrained`), applied frozen at its trained base rate.

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
  """The :class:`~lrmeta.protocol.Method` of one ``methods``
  entry (forms as in :func:`method_optimizer`), at the fixed base rate
  ``learning_rate``; a saved controller brings its own signals."""
  tx, signals = None, loss_signal
  if method.startswith("ckpt:"):
    from lrmeta import learned  # pylint: disable=import-outside-toplevel
    tx, signals = learned.frozen(method[len("ckpt:"):], num_steps,
                                 num_classes=num_classes)
  elif method.startswith("pretrained:"):
    from lrmeta import pretrained  # pylint: disable=import-outside-toplevel
    tx, signals = pretrained.frozen(method[len("pretrained:"):], num_steps,
                                    num_classes=num_classes)
  elif baseline_call(method) is not None:
    name, options = baseline_call(method)
    try:
      sched = simple_schedule(name, learning_rate, num_steps, **options)
    except ValueError as e:
      raise ValueError(f"method {method!r}: {e}") from None
    tx = base_optimizer(optimizer, sched, momentum=momentum,
                        weight_decay=weight_decay)
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
