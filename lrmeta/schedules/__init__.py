"""Hand-designed LR policies (all of LRBench's) and LRBench-style selection.

``baselines`` holds the hand schedules every comparison runs over a budget
(constant, step, cosine, warm-up + cosine, linear decay to zero,
warm-up-stable-decay); ``shapes`` holds the closed forms (nine periodic shapes times three amplitude
modulations, plus the monotone policies); ``registry`` names them, checks
their parameters and builds Optax schedules (:func:`policy`, warm-up,
composition); ``packed`` is the array form that lets a population of
different policies train as one vmapped program; ``optimizers`` drives SGD
with a schedule or a reduce-on-plateau rule; ``spec`` reads and writes
policies as plain data (``"tri2(k0=0.01, k1=0.1, l=2000)"``); ``select`` is
LRBench's select-and-compose algorithm.
"""

from lrmeta.schedules.baselines import (BASELINES, baseline_schedule,
                                        parse_baseline, unit_schedule)
from lrmeta.schedules.optimizers import plateau_sgd, scale_by_plateau_lr, sgd
from lrmeta.schedules.packed import (NUM_SLOTS, SLOTS, PackedPolicy, pack,
                                     packed_schedule, stack_packed)
from lrmeta.schedules.registry import (LRBENCH_POLICIES, POLICIES, POLICY_IDS,
                                       PolicyError, closed_form, compose,
                                       policy, warmup)
from lrmeta.schedules.spec import (CompositeSpec, PolicySpec, compose_specs,
                                   format_spec, pack_spec, parse_spec,
                                   schedule_from_spec, spec_to_dict)

__all__ = ["BASELINES", "CompositeSpec", "LRBENCH_POLICIES", "NUM_SLOTS", "POLICIES",
           "POLICY_IDS", "PackedPolicy", "PolicyError", "PolicySpec", "SLOTS",
           "baseline_schedule", "closed_form", "compose", "compose_specs", "format_spec", "pack",
           "pack_spec", "packed_schedule", "parse_baseline", "parse_spec", "plateau_sgd",
           "policy", "scale_by_plateau_lr", "schedule_from_spec", "sgd",
           "spec_to_dict", "stack_packed", "unit_schedule", "warmup"]
