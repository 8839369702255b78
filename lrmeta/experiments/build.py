"""Building what a config describes: the task of its ``task`` block and its
budget in steps (shared by every job)."""

from __future__ import annotations

from lrmeta.experiments.config import check_range
from lrmeta.tasks import make_task


def build_task(cfg, model_kwargs: dict | None = None):
  """The task a config's ``task`` block describes (shared by every job);
  ``model_kwargs`` (e.g. layer widths) go to the model constructor."""
  check_range(cfg, "task.batch_size", 1)
  check_range(cfg, "task.label_noise", 0.0, 1.0)
  check_range(cfg, "task.num_val", 1)
  data_kwargs = {"num_val": cfg.task.num_val, "seed": cfg.task.data_seed,
                 "label_noise": cfg.task.label_noise,
                 "max_train": cfg.task.max_train or None,
                 "balanced_val": bool(cfg.task.get("balanced_val", False))}
  if cfg.task.data_dir:
    data_kwargs["data_dir"] = cfg.task.data_dir
  return make_task(cfg.task.dataset, cfg.task.model,
                   batch_size=cfg.task.batch_size, data_kwargs=data_kwargs,
                   model_kwargs=model_kwargs)


def num_steps(cfg, task) -> int:
  """``cfg.train.epochs`` of the task's training split, in steps."""
  check_range(cfg, "train.epochs", 1e-6)
  return max(1, int(round(cfg.train.epochs * task.dataset.num_train /
                          task.batch_size)))


__all__ = ["build_task", "num_steps"]
