"""Aliases: the `lrmeta train` job is :mod:`lrmeta.experiments.jobs.train`;
a config's task and budget are built by :mod:`lrmeta.experiments.build`."""

from lrmeta.experiments.build import build_task, num_steps
from lrmeta.experiments.jobs.train import run
from lrmeta.experiments.report import history_rows

__all__ = ["build_task", "history_rows", "num_steps", "run"]
