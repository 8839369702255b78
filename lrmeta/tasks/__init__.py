"""Tasks (a dataset, a model, the loss and the metrics) and task families.

:mod:`lrmeta.tasks.protocol` says what a task and a family must provide;
:class:`Task` (image classification) and :class:`lrmeta.tasks.family.Family`
(pooled images, small MLPs) implement them, and users bring their own.
"""

from lrmeta.tasks.base import Task, accuracy, make_task
from lrmeta.tasks.protocol import (Shape, ShapeFamily, TaskFamily,
                                   TaskProtocol, batch_metrics, maximizes,
                                   metric_of, sample_shapes, single,
                                   judged_shapes)

__all__ = ["Shape", "ShapeFamily", "Task", "TaskFamily", "TaskProtocol",
           "accuracy", "batch_metrics", "make_task", "maximizes", "metric_of",
           "sample_shapes", "single", "judged_shapes"]
