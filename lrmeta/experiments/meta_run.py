"""The scaffold every meta-training loop of ``lrmeta meta-train`` runs in.

:func:`run_meta_training` owns what the single-task loop
(:mod:`lrmeta.experiments.meta_loop`) and the task-family loop
(:mod:`lrmeta.experiments.family_loop`) share: checkpoints every
``save_every`` meta-steps under ``<out>/checkpoints/meta`` (a rerun of the
same config resumes), one line per meta-step in ``<out>/meta_metrics.jsonl``
(started afresh when the run starts from step 0), a progress bar and the
timing. A loop supplies only its trainer and what a row records.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
from tqdm.auto import tqdm

from lrmeta.meta import MetaCheckpointer, meta_train

LOG_NAME = "meta_metrics.jsonl"


def read_trace(path: pathlib.Path) -> list[dict]:
  """The records of a ``meta_metrics.jsonl``, one per meta-step."""
  # A run killed between checkpoints logged steps it then replays: keep the
  # last record of each meta-step.
  by_step = {}
  for line in path.read_text().splitlines():
    r = json.loads(line)
    by_step[r["meta_step"]] = r
  return [by_step[s] for s in sorted(by_step)]


def append_row(path: pathlib.Path, row: dict) -> None:
  """One JSON line appended to ``path``."""
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")


def run_meta_training(trainer, theta0: Any, key: jax.Array, total: int,
                      out: pathlib.Path, *, save_every: int, desc: str,
                      quiet: bool,
                      row: Callable[[Any, dict], dict],
                      postfix: Callable[[dict], dict],
                      first_rows: Callable[[], list[dict]] | None = None
                      ) -> dict:
  """``total`` outer steps of ``trainer`` from ``theta0`` (resumable).

  Args:
    trainer: a :class:`lrmeta.meta.MetaTrainer`.
    theta0: the initial meta-parameters (ignored on resume).
    key: the outer loop's PRNG key.
    total: outer steps in all.
    out: the results folder (``checkpoints/meta`` and the log go there).
    save_every: checkpoint period in meta-steps.
    desc: the progress bar's label.
    quiet: no progress bar.
    row: ``(state, metrics) -> record`` of one meta-step (it may also save
      side files, e.g. snapshots); the record is logged.
    postfix: ``record -> progress-bar postfix``.
    first_rows: records logged before the first step of a fresh run (e.g.
      the objective at ``theta0``).

  Returns:
    ``{"state", "trace" (the log's records), "seconds"}``.
  """
  ckpt = MetaCheckpointer(str(out / "checkpoints" / "meta"), save_every)
  start = ckpt.latest_step() or 0
  log_path = out / LOG_NAME
  if start == 0:
    if log_path.exists():
      log_path.unlink()
    for r in first_rows() if first_rows is not None else ():
      append_row(log_path, r)
  bar = tqdm(total=total, initial=min(start, total), disable=quiet,
             desc=desc, unit="meta-step", dynamic_ncols=True, leave=False)

  def callback(state, metrics):
    record = row(state, metrics)
    append_row(log_path, record)
    bar.update(1)
    bar.set_postfix(postfix(record))

  t0 = time.perf_counter()
  state, _ = meta_train(trainer, theta0, key, total, checkpointer=ckpt,
                        callback=callback)
  bar.close()
  ckpt.close()
  return {"state": state, "trace": read_trace(log_path),
          "seconds": time.perf_counter() - t0}


__all__ = ["LOG_NAME", "append_row", "read_trace", "run_meta_training"]
