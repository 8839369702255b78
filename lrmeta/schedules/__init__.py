"""Hand-designed LR policies (all of LRBench's) and LRBench-style selection.

``policies`` holds every policy as an Optax schedule plus the packed array form
that lets a population of different policies train as one vmapped program;
``spec`` reads and writes policies as plain data (``"tri2(k0=0.01, k1=0.1,
l=2000)"``); ``select`` is LRBench's select-and-compose workflow.
"""

from lrmeta.schedules.policies import (LRBENCH_POLICIES, NUM_SLOTS, POLICIES,
                                       POLICY_IDS, SLOTS, PackedPolicy,
                                       PolicyError, closed_form, compose,
                                       pack, packed_schedule, plateau_sgd,
                                       policy, scale_by_plateau_lr, sgd,
                                       stack_packed, warmup)
from lrmeta.schedules.spec import (CompositeSpec, PolicySpec, compose_specs,
                                   format_spec, pack_spec, parse_spec,
                                   schedule_from_spec, spec_to_dict)

__all__ = ["CompositeSpec", "LRBENCH_POLICIES", "NUM_SLOTS", "POLICIES",
           "POLICY_IDS", "PackedPolicy", "PolicyError", "PolicySpec", "SLOTS",
           "closed_form", "compose", "compose_specs", "format_spec", "pack",
           "pack_spec", "packed_schedule", "parse_spec", "plateau_sgd",
           "policy", "scale_by_plateau_lr", "schedule_from_spec", "sgd",
           "spec_to_dict", "stack_packed", "warmup"]
