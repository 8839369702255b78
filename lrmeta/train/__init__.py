"""Inner training loops (scanned, vmapped, reference) and their state."""

from lrmeta.train.loop import (NEVER_DIVERGED, History, first_nonfinite_step,
                               init_population, population_mesh,
                               replicate_keys, shard_population, stack_hparams,
                               train, train_population, train_reference)
from lrmeta.train.state import (TrainState, all_finite, applied_learning_rate,
                                as_extra_args, clipped_count, history_key,
                                init_state, loss_signal, run_steps,
                                train_step, with_split_loss,
                                with_validation_loss)

__all__ = ["History", "NEVER_DIVERGED", "TrainState", "all_finite",
           "applied_learning_rate", "as_extra_args", "clipped_count",
           "first_nonfinite_step", "history_key",
           "init_population", "init_state", "loss_signal", "population_mesh",
           "replicate_keys", "run_steps", "shard_population", "stack_hparams",
           "train", "train_population", "train_reference", "train_step",
           "with_split_loss", "with_validation_loss"]
