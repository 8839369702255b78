"""Aliases of the task-family helpers the jobs share, at the import path
:mod:`lrmeta.experiments.rl_family` and scripts read them from.

The held-out protocol: :mod:`lrmeta.experiments.heldout`; the transfer
stage: :mod:`lrmeta.experiments.transfer`; report pieces:
:mod:`lrmeta.experiments.report`; a saved meta-training run:
:func:`lrmeta.experiments.family_loop.meta_train_saved`; the
``lrmeta meta-train`` job: :mod:`lrmeta.experiments.jobs.meta_train`.
"""

from lrmeta.experiments.family_loop import meta_train_saved
from lrmeta.experiments.heldout import (TUNE_SEED_OFFSET, accuracy_points,
                                        controller_at, controller_method,
                                        heldout_shapes, judge, protocol,
                                        per_seed_accuracies,
                                        tuned_controller_method, tuned_method,
                                        versus_baselines, versus_cosine,
                                        versus_each)
from lrmeta.experiments.jobs.meta_train import run
from lrmeta.experiments.report import baseline_rows, rate_curves, test_note
from lrmeta.experiments.transfer import (transfer_note, transfer_stage,
                                         transfer_task)
from lrmeta.protocol import DEFAULT_BASELINES, interval

__all__ = ["DEFAULT_BASELINES", "TUNE_SEED_OFFSET", "accuracy_points",
           "baseline_rows", "controller_at", "controller_method",
           "heldout_shapes", "interval", "judge", "meta_train_saved",
           "per_seed_accuracies",
           "protocol", "rate_curves", "run", "test_note", "transfer_note",
           "transfer_stage", "transfer_task", "tuned_controller_method",
           "tuned_method", "versus_baselines", "versus_cosine",
           "versus_each"]
