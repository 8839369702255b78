"""Checks a whole config before any data loads.

:func:`validate` applies :data:`RULES`
(:mod:`lrmeta.experiments.config_rules`), a table keyed by dotted config key,
to whichever of those keys a config has (a key without a rule is accepted as
it is; rules that import a registry run after the plain ones), then the
checks that read several keys or touch the disk: a multiple-of relation
between step counts, every ``methods`` entry built into its optimizer, saved
controllers loaded, and a source found (not read) for every dataset the run
loads. The first failure raises :class:`ConfigError` with a message that names the key and
the value, e.g.::

  config key 'learning_rate' must be > 0, got -1.0

or, for a data folder that is set but unusable,
:class:`lrmeta.data.DataNotFoundError` naming the key or variable that set
it."""

from __future__ import annotations

import os

from lrmeta.experiments.config import ConfigError, flatten
from lrmeta.experiments.config_rules import (RULES, TRANSFER_SECTION_RULES,
                                            method_list)


# -- checks across keys, and against the disk -------------------------------------

def _multiple(flat: dict, key: str, of: str) -> None:
  if key in flat and of in flat and flat[key] % flat[of]:
    raise ConfigError(f"config key {key!r} ({flat[key]}) must be a multiple "
                      f"of {of!r} ({flat[of]})")


def check_controller_dir(path: str, label: str = "config key 'controller'"
                         ) -> None:
  """A folder written by :func:`lrmeta.learned.save` that loads (through
  the store, so its kind is registered), or ``pretrained:NAME`` of a
  shipped controller; ``label`` says where the path came
  from in the messages."""
  if not isinstance(path, str) or not path.strip():
    raise ConfigError(
        f"{label} is empty: give the folder of a saved controller, e.g. "
        f"results/mlrsnet_fmnist/checkpoints/controller")
  if path.startswith("pretrained:"):
    from lrmeta import pretrained  # pylint: disable=import-outside-toplevel
    if path[len("pretrained:"):] not in pretrained.names():
      raise ConfigError(f"{label}: no shipped controller {path!r}; "
                        f"lrmeta.pretrained.names(): {pretrained.names()}")
    return
  if not os.path.isdir(path):
    raise ConfigError(f"{label}: no saved controller at {path!r} (no such "
                      f"folder)")
  from lrmeta import learned  # pylint: disable=import-outside-toplevel
  try:
    learned.load(path)
  except ValueError as e:
    if "unknown learned controller" in str(e):
      raise ConfigError(f"{label}: {path!r} holds {e}") from e
    reason = " ".join(str(e.__cause__ or e).split())[:200]
    raise ConfigError(f"{label}: cannot load a saved controller from "
                      f"{path!r} (missing or truncated files: {reason})"
                      ) from e


def check_methods(cfg) -> None:
  """Builds every ``cfg.methods`` entry; a ``ckpt:PATH`` entry is loaded."""
  from lrmeta.experiments.optim import method_optimizer  # pylint: disable=import-outside-toplevel
  method_list("methods", cfg.methods)
  for method in cfg.methods:
    if method.startswith("ckpt:"):
      check_controller_dir(method[len("ckpt:"):],
                           f"config key 'methods', method {method!r}")
      continue
    try:
      method_optimizer(method, optimizer=cfg.optimizer.name,
                       learning_rate=cfg.learning_rate,
                       momentum=cfg.optimizer.momentum,
                       weight_decay=cfg.optimizer.weight_decay, num_steps=100)
    except Exception as e:  # pylint: disable=broad-except
      msg = " ".join(str(e).split()) or type(e).__name__
      if repr(method) not in msg:
        msg = f"method {method!r}: {msg}"
      raise ConfigError(f"config key 'methods': {msg}") from e


def config_datasets(flat: dict) -> list[tuple[str, str | None]]:
  """``(dataset, data_dir)`` pairs, without repeats, of every dataset a run
  of the (flattened) config loads: its task, its transfer task(s) when
  transfer is enabled (only the sections ``transfer.tasks`` lists) and its
  family's sources."""
  out: list[tuple[str, str | None]] = []

  def add(name, data_dir=None):
    if (name, data_dir or None) not in out:
      out.append((name, data_dir or None))

  uses_transfer = flat.get("transfer.enabled", False)
  if "task.dataset" in flat:
    add(flat["task.dataset"], flat.get("task.data_dir"))
  for name in flat.get("transfer.tasks", ()) if uses_transfer else ():
    if f"transfer.{name}.dataset" in flat:
      add(flat[f"transfer.{name}.dataset"])
  for source in flat.get("family.sources", ()):
    add(source.partition(":")[0])
  return out


def check_data(flat: dict) -> dict:
  """Finds (without reading) every dataset the run will load.

  Returns:
    ``{dataset: lrmeta.data.Source}`` (a dataset read from two places, e.g.
    the task's ``data_dir`` and a transfer's default, is checked in both
    and listed with the first).

  Raises:
    lrmeta.data.DataNotFoundError: for the first dataset with no source.
  """
  from lrmeta.data import data_source  # pylint: disable=import-outside-toplevel
  out = {}
  for name, data_dir in config_datasets(flat):
    out.setdefault(name, data_source(name, data_dir))
  return out


# The controllers `lrmeta meta-train` trains on a single task (``kind =
# "task"``); the others train on the task family only (``kind = "family"``).
SINGLE_TASK_CONTROLLERS = ("mlr_snet",)
# What `lrmeta meta-train` trains on (config key ``kind``) and the config
# section each kind reads.
META_TRAIN_KINDS = {"task": "task", "family": "family"}


def check_meta_train_kind(flat: dict) -> None:
  """A meta-train config says what it trains on (``kind``, ``"task"`` or
  ``"family"``), has the section that kind reads, and on a single task
  names a controller that path trains (it would otherwise train MLR-SNet
  under another name)."""
  kind = flat.get("kind")
  if kind not in META_TRAIN_KINDS:
    raise ConfigError(
        f"config key 'kind' must be one of {tuple(META_TRAIN_KINDS)} for "
        f"`lrmeta meta-train` (a single task, e.g. configs/mlrsnet_fmnist.py,"
        f" or the task family, e.g. configs/family_es.py), got {kind!r}")
  section = META_TRAIN_KINDS[kind]
  if not any(k.startswith(section + ".") for k in flat):
    raise ConfigError(f"config key 'kind' is {kind!r}, but the config has "
                      f"no {section!r} section")
  name = flat.get("controller.name")
  if kind == "task" and name not in SINGLE_TASK_CONTROLLERS:
    raise ConfigError(
        f"config key 'controller.name': {name!r} is meta-trained on the "
        f"task family only (kind = 'family', e.g. configs/learned_lr.py); "
        f"on a single task `lrmeta meta-train` trains "
        f"{SINGLE_TASK_CONTROLLERS}")


def rule_of(flat: dict, key: str):
  """The rule of a (flattened) config key: :data:`RULES`'s, or for a key
  ``transfer.<section>.<k>`` of a transfer section,
  :data:`TRANSFER_SECTION_RULES`'s."""
  del flat  # every section is checked, listed in transfer.tasks or not
  if key in RULES:
    return RULES[key]
  parts = key.split(".")
  if len(parts) == 3 and parts[0] == "transfer":
    return TRANSFER_SECTION_RULES.get(parts[2])
  return None


def check_transfer_sections(flat: dict, command: str | None = None
                            ) -> None:
  """The ``transfer`` block of ``lrmeta meta-train`` and ``lrmeta
  evaluate`` names its sections (``transfer.tasks``), and every section it
  names exists with every key of the schema
  (:func:`lrmeta.experiments.config.transfer_section`)."""
  if command in ("meta-train", "evaluate") and "transfer.tasks" not in flat:
    raise ConfigError(
        "config key 'transfer.tasks' is missing: a transfer block holds "
        "'enabled', 'tasks' (section names) and one section per name, built "
        "by lrmeta.experiments.config.transfer_section")
  for name in flat.get("transfer.tasks", ()):
    missing = [k for k in TRANSFER_SECTION_RULES
               if f"transfer.{name}.{k}" not in flat]
    if missing:
      raise ConfigError(
          f"config key 'transfer.tasks' names section {name!r}, which lacks "
          f"keys {missing} (build it with lrmeta.experiments.config."
          f"transfer_section)")


def validate(cfg, command: str | None = None) -> dict:
  """Checks ``cfg`` (after overrides) for ``command``; raises
  :class:`ConfigError` (or :class:`lrmeta.data.DataNotFoundError`) naming
  the first key at fault. Loads no data.

  Returns:
    ``{dataset: lrmeta.data.Source}``: where each dataset the run loads
    will be read from (:func:`check_data`).
  """
  flat = flatten(cfg)
  for imports in (False, True):
    for key, value in flat.items():
      rule = rule_of(flat, key)
      if rule is not None and getattr(rule, "imports", False) == imports:
        rule(key, value)
  _multiple(flat, "env.total_steps", "env.steps_per_action")
  if flat.get("meta.estimator") in ("truncated", "es", "pes"):
    _multiple(flat, "meta.horizon", "meta.window")
  if flat.get("meta.estimator") == "lookahead":
    _multiple(flat, "meta.horizon", "meta.every")
  check_transfer_sections(flat, command)
  if command == "meta-train":
    check_meta_train_kind(flat)
  if isinstance(flat.get("controller"), str) or command == "evaluate":
    spec = flat.get("controller", "")
    for path in (spec.split(",") if isinstance(spec, str) and spec.strip()
                 else [spec]):  # one folder, or several (comma-separated)
      check_controller_dir(path.strip() if isinstance(path, str) else path)
  if "methods" in flat:
    check_methods(cfg)
  return check_data(flat)


__all__ = ["RULES", "ConfigError", "check_controller_dir", "check_data",
           "check_meta_train_kind", "check_methods", "config_datasets",
           "validate"]
