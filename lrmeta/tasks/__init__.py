"""Tasks: a dataset, a model, the loss and the metrics."""

from lrmeta.tasks.base import Task, accuracy, make_task

__all__ = ["Task", "accuracy", "make_task"]
