"""The transfer stage: frozen controllers on a task against tuned baselines.

One stage and one config schema for every job that applies a controller,
frozen, to a task it was not trained on (``lrmeta meta-train`` and ``lrmeta
rl-train``, on a single task or on the task family, ``lrmeta evaluate`` and
the reproduction scripts).

A *transfer section* (:func:`lrmeta.experiments.config.transfer_section`
builds one; :func:`lrmeta.experiments.config_rules` checks it) holds:

* the task: ``dataset``, ``model`` (at its default widths, or an MLP's
  ``hidden`` widths when given), ``batch_size``, ``num_val``, ``max_train``
  (0: the whole training split);
* the budget: ``steps``;
* the protocol: ``lr_grid`` (every baseline's peak rate and every tunable
  controller's base rate tuned over it on validation, widened at its
  edges), ``tune_seeds``, ``test_seeds`` (paired, disjoint from the tune
  seeds), ``baselines`` (:data:`lrmeta.protocol.DEFAULT_BASELINES` by
  default), ``eval_every`` (0: one evaluation at the end of a run),
  ``eval_examples`` (0: the whole test split) and ``executor``
  (``"sequential"`` or ``"population"``, :mod:`lrmeta.protocol.executors`).

A config's ``transfer`` block is ``enabled``, ``tasks`` (the section names
to run, in order) and one section per name.

:func:`judge_frozen` is the stage itself (a built task, frozen methods, a
:class:`lrmeta.protocol.Protocol`); :func:`transfer_stage` builds the task
and protocol of a section and runs it; :func:`run_transfers` runs every
section of a config's ``transfer`` block and reports each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from lrmeta.experiments import results as res
from lrmeta.protocol import (DEFAULT_BASELINES, Method, Protocol, compare,
                             differences, interval, schedule_method,
                             versus_best)
from lrmeta.tasks import make_task

# name -> (budget in steps -> Method): a controller built for the section's
# budget.
FrozenMethods = dict[str, Callable[[int], Method]]


def transfer_task(section):
  """The task of a transfer section (``dataset``, ``model`` at its default
  widths or, for an MLP, ``hidden`` when given, ``batch_size``, ``num_val``,
  ``max_train``; 0: all)."""
  hidden = tuple(section.get("hidden", ()))
  return make_task(section.dataset, section.model,
                   batch_size=section.batch_size,
                   data_kwargs={"num_val": section.num_val,
                                "max_train": section.max_train or None},
                   model_kwargs={"hidden": hidden} if hidden else None)


def section_protocol(section) -> Protocol:
  """The :class:`Protocol` of a transfer section."""
  evals = ({"eval_every": int(section.eval_every)} if section.eval_every
           else {"num_evals": 1})
  return Protocol(int(section.steps), tuple(section.lr_grid),
                  tuple(section.tune_seeds), tuple(section.test_seeds),
                  eval_examples=section.eval_examples or None,
                  executor=section.executor, **evals)


def judge_frozen(task, frozen: dict[str, Method], protocol: Protocol, *,
                 baselines: Sequence[str] = DEFAULT_BASELINES,
                 optimizer: str = "sgd", momentum: float = 0.9,
                 weight_decay: float = 0.0, quiet: bool = True,
                 log: Callable[[str], None] | None = None) -> dict:
  """Frozen methods against tuned baselines on one task.

  Args:
    task: the task.
    frozen: name -> :class:`Method` (as saved, or with its base rate left
      to the protocol to tune).
    protocol: budget, grid, seeds and evaluation.
    baselines: classic schedules (peak rate tuned); the verdict of every
      frozen method is against their best.
    optimizer, momentum, weight_decay: the baselines' base optimizer.
    quiet: no progress bars.
    log: progress lines (``None``: silent).

  Returns:
    ``{"task", "results" (:func:`lrmeta.protocol.compare`'s, baselines
    first), "vs_cosine": name -> paired test-accuracy interval in points
    against tuned cosine (empty without a cosine baseline), "vs_best": name
    -> the same against the best baseline, with its name and verdict}``.
  """
  methods = {b: schedule_method(b, protocol.steps, optimizer=optimizer,
                                momentum=momentum, weight_decay=weight_decay)
             for b in baselines}
  methods.update(frozen)
  results = compare(task, methods, protocol, quiet=quiet, log=log)
  vs = ({n: interval(differences(results, n, "cosine")["pooled"]["acc"])
         for n in results if n != "cosine"} if "cosine" in baselines else {})
  best = {n: versus_best(results, n, list(baselines)) for n in frozen}
  return {"task": task, "results": results, "vs_cosine": vs, "vs_best": best}


def transfer_stage(section, methods: FrozenMethods, *, momentum: float,
                   weight_decay: float = 0.0, optimizer: str = "sgd",
                   baselines: Sequence[str] | None = None, task=None,
                   quiet: bool = True, log=None) -> dict:
  """Frozen methods on a transfer section's task against tuned baselines.

  Args:
    section: a transfer section (the module doc's keys).
    methods: name -> ``steps -> Method`` (e.g.
      :func:`lrmeta.experiments.heldout.controller_at`).
    momentum, weight_decay, optimizer: the baselines' base optimizer.
    baselines: overrides the section's ``baselines`` (whose ``()`` means
      :data:`lrmeta.protocol.DEFAULT_BASELINES`).
    task: the section's task when already built (:func:`transfer_task`).
    quiet: no progress bars.
    log: progress lines (``None``: silent).

  Returns:
    :func:`judge_frozen`'s dict.
  """
  steps = int(section.steps)
  if baselines is None:
    baselines = tuple(section.baselines) or DEFAULT_BASELINES
  return judge_frozen(
      transfer_task(section) if task is None else task,
      {n: make(steps) for n, make in methods.items()},
      section_protocol(section), baselines=tuple(baselines),
      optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
      quiet=quiet, log=log)


def transfer_note(section, stage: dict, names: Sequence[str]) -> str:
  """One paragraph on a transfer stage: the task and the paired intervals
  of ``names`` against tuned cosine and against the best baseline."""
  vs = "; ".join(f"{n} - cosine: {d['mean']:+.2f} [{d['ci_low']:+.2f}, "
                 f"{d['ci_high']:+.2f}] points"
                 for n, d in stage["vs_cosine"].items() if n in names)
  best = "; ".join(f"{n} - best baseline ({d['baseline']}): {d['mean']:+.2f} "
                   f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}], {d['verdict']}"
                   for n, d in stage.get("vs_best", {}).items() if n in names)
  return (f"{stage['task'].name} ({stage['task'].dataset.name}, "
          f"{section.max_train or 'all'} training images), "
          f"{section.steps} steps of "
          f"batch {section.batch_size}; base rates tuned on validation over "
          f"{tuple(section.lr_grid)} (seeds {tuple(section.tune_seeds)}); "
          f"{len(section.test_seeds)} paired test seeds. {vs}."
          + (f" {best}." if best else ""))


def stage_summary(stage: dict) -> dict[str, Any]:
  """The summary record of a transfer stage: the task, mean ± std test
  accuracy and tuned rate of every method, the intervals."""
  r = stage["results"]
  return {"task": stage["task"].name,
          "test_acc": {n: res.mean_std(x.hist.final("test_acc"))
                       for n, x in r.items()},
          "tuned_lr": {n: x.lr for n, x in r.items()},
          "vs_cosine": stage["vs_cosine"], "vs_best": stage["vs_best"]}


def report_section(section, stage: dict, names: Sequence[str] | None = None
                   ) -> tuple[str, str, str]:
  """The summary section of a transfer stage, ``(title, note, table)``;
  the note gives the intervals of ``names`` (default: every method against
  cosine, else every frozen method)."""
  if names is None:
    names = list(stage["vs_cosine"] or stage["vs_best"])
  return (f"Transfer: {stage['task'].name}",
          transfer_note(section, stage, names),
          res.markdown_table(
              ["method", "tuned base lr", "test acc", "test loss", "val acc"],
              res.result_rows(stage["results"],
                              ("test_acc", "test_loss", "val_acc"))))


def run_transfers(cfg, methods_for: Callable[[Any], FrozenMethods],
                  summary: dict, sections: list, *, quiet: bool,
                  **optimizer) -> dict[str, dict]:
  """Every section ``cfg.transfer.tasks`` names, in order: the frozen
  methods ``methods_for(task)`` against the tuned baselines
  (:func:`transfer_stage`, ``optimizer``: its baseline-optimizer keywords).
  Adds ``transfer_<name>`` (:func:`stage_summary`),
  ``transfer_<name>_vs_cosine``, ``transfer_<name>_vs_best`` and the
  stage's seconds to ``summary`` and its :func:`report_section` to
  ``sections``; returns the stages by name."""
  done = {}
  for name in cfg.transfer.tasks:
    section = cfg.transfer[name]
    print(f"[transfer] {section.dataset} / {section.model}: {section.steps} "
          f"steps of batch {section.batch_size}, controllers frozen",
          flush=True)
    t0 = time.perf_counter()
    task = transfer_task(section)
    stage = transfer_stage(
        section, methods_for(task), task=task, quiet=quiet,
        log=None if quiet else (lambda s: print(f"  [transfer]{s[1:]}",
                                                flush=True)), **optimizer)
    summary["seconds"][f"transfer_{name}"] = time.perf_counter() - t0
    summary[f"transfer_{name}"] = stage_summary(stage)
    summary[f"transfer_{name}_vs_cosine"] = stage["vs_cosine"]
    summary[f"transfer_{name}_vs_best"] = stage["vs_best"]
    sections.append(report_section(section, stage))
    done[name] = stage
  return done


__all__ = ["FrozenMethods", "judge_frozen", "report_section",
           "run_transfers", "section_protocol", "stage_summary",
           "transfer_note", "transfer_stage", "transfer_task"]
