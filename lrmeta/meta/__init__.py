"""Meta-training: inner problems, meta-gradient estimators (one protocol, one
factory), the outer loop, and checkpoints."""

from lrmeta.meta.checkpoint import (MetaCheckpointer, TreeCheckpointer,
                                    load_controller, save_controller)
from lrmeta.meta.estimators import (PES, AntitheticES, Estimator,
                                    EstimatorState, OnlineLookahead,
                                    TruncatedBackprop, carry_controller_state,
                                    one_step_lookahead, tree_isfinite,
                                    unrolled)
from lrmeta.meta.factory import ESTIMATORS, make_estimator
from lrmeta.meta.outer import (MetaState, MetaTrainer, default_meta_optimizer,
                               meta_train)
from lrmeta.meta.problem import (InnerProblem, TaskProblem, checkpointed_scan,
                                 remat_block_size)

__all__ = ["ESTIMATORS", "AntitheticES", "Estimator", "EstimatorState",
           "InnerProblem", "MetaCheckpointer", "MetaState", "MetaTrainer",
           "OnlineLookahead", "PES", "TaskProblem", "TreeCheckpointer", "TruncatedBackprop",
           "carry_controller_state", "checkpointed_scan",
           "default_meta_optimizer", "load_controller",
           "make_estimator", "meta_train", "one_step_lookahead",
           "remat_block_size", "save_controller", "tree_isfinite",
           "unrolled"]
