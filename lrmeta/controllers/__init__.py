"""Learning-rate controllers, each an Optax gradient transformation.

- ``hypergradient``: HD (Baydin et al. 2018), additive and multiplicative,
  global / per-layer / per-element rates, over any base optimizer.
- ``self_adaptive``: parameter-specific, structured rates adapted by their
  one-step-lookahead hypergradient (after Chen et al. 2022; see its docstring
  for what is taken from the paper and what is an option of ours).
- ``mlr_snet``: the MLR-SNet LSTM schedule (Shu et al.).
- ``learned_schedule``: a low-dimensional learned schedule, knots over the
  budget plus a small bounded MLP of scale-free loss features.
- ``context_schedule``: that schedule conditioned on its run (log budget,
  log parameter count, the loss change over an early window).
- ``rl_policy``: a frozen RL actor setting the rate (Xu, Dai et al. 2019;
  Xu, Qin et al. 2017).
- ``rl_features``: the configuration, feature tracking and observations the
  RL policy shares with its training environment.
- ``rates``: the rate bounds and guard HD and the self-adaptive rule share.
- ``checks``: the static argument checks every factory runs.

Hand-designed schedules live in :mod:`lrmeta.schedules`.
"""

from lrmeta.controllers.hypergradient import (HypergradientState, hd_adam,
                                              hd_sgd, hd_sgdn,
                                              learning_rate_tree,
                                              scale_by_hypergradient)
from lrmeta.controllers.learned_schedule import (
    LearnedScheduleState, init_learned_schedule_params,
    learned_schedule_adam, learned_schedule_scale, learned_schedule_sgd)
from lrmeta.controllers.mlr_snet import (MLRSNetState, compute_gamma,
                                         init_mlr_snet_params, mlr_snet,
                                         mlr_snet_sgd)
from lrmeta.controllers.rl_policy import (PolicyConfig, RLPolicyState,
                                          init_actor, rl_lr_policy, rl_lr_sgd)
from lrmeta.controllers.self_adaptive import (SelfAdaptiveState,
                                              scale_by_self_adaptive_lr,
                                              self_adaptive_adam,
                                              self_adaptive_sgd)

__all__ = ["HypergradientState", "LearnedScheduleState", "MLRSNetState",
           "PolicyConfig", "RLPolicyState", "SelfAdaptiveState",
           "compute_gamma", "hd_adam", "hd_sgd", "hd_sgdn", "init_actor",
           "init_learned_schedule_params", "init_mlr_snet_params",
           "learned_schedule_adam", "learned_schedule_scale",
           "learned_schedule_sgd",
           "learning_rate_tree", "mlr_snet", "mlr_snet_sgd", "rl_lr_policy",
           "rl_lr_sgd", "scale_by_hypergradient", "scale_by_self_adaptive_lr",
           "self_adaptive_adam", "self_adaptive_sgd"]
