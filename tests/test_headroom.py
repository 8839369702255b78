"""Headroom: the per-instance oracle and the family choice are read from the
tuning runs (validation), paired against the test runs; a learned method's
verdict against them."""

import numpy as np
import pytest

from lrmeta import protocol as C
from lrmeta.protocol import headroom as H
from lrmeta.tasks.family import Instance

SHAPES = tuple(Instance(pool=7, hidden=(16,), batch_size=32, num_steps=t)
               for t in (40, 20))
NAMES = ("constant", "cosine", "wsd(decay_fraction=0.3)")


@pytest.fixture(scope="module")
def results():
  prot = C.FamilyProtocol(C.sqrt2_grid(0.025), (100,), (1, 2, 3),
                          max_widen=1)
  return C.compare_family(SHAPES, H.hand_methods(NAMES), prot, quiet=True)


def _val(r, s, lr):
  return r.grid_val_acc[s][lr]


@pytest.mark.slow
def test_choices_are_the_validation_argmax(results):
  fam = H.family_choice(results, NAMES)
  pooled = {n: np.mean([_val(results[n], s, results[n].family_lr)
                        for s in SHAPES]) for n in NAMES}
  assert pooled[fam] == max(pooled.values())
  inst = H.instance_choice(results, NAMES)
  for s in SHAPES:
    best = {n: _val(results[n], s, results[n].per_instance[s].lr)
            for n in NAMES}
    assert best[inst[s]] == max(best.values())


@pytest.mark.slow
def test_headroom_pairs_oracle_with_the_family_choice(results):
  h = H.headroom(results, NAMES)
  assert h["pooled"]["n"] == len(SHAPES) * 3
  fam = h["family_choice"]
  per = []
  for s in SHAPES:
    oracle = results[h["instance_choice"][s.name]].per_instance[s]
    ref = results[fam].per_family[s]
    d = 100 * (oracle.scores() - ref.scores())
    per.append(d)
    assert h["per_instance"][s.name]["mean"] == pytest.approx(d.mean())
  assert h["pooled"]["mean"] == pytest.approx(np.concatenate(per).mean())


@pytest.mark.slow
def test_versus_hand_of_the_family_choice_is_zero(results):
  fam = H.family_choice(results, NAMES)
  v = H.versus_hand(results, fam, NAMES)
  others = [n for n in NAMES if n != fam]
  assert v["heldout_best_hand_family"] == H.family_choice(results, others)
  room = H.headroom(results, others)["pooled"]
  assert v["heldout_headroom"]["mean"] == pytest.approx(room["mean"])
  assert set(v["heldout_vs_best_hand_family"]) == {"mean", "ci_low",
                                                   "ci_high"}


def test_widen_shapes():
  long, = H.widen_shapes(SHAPES[:1], steps_scale=4, label_noise=0.5,
                         max_train=1000)
  assert (long.num_steps, long.label_noise, long.max_train) == (160, 0.5,
                                                                1000)
  assert H.widen_shapes(SHAPES) == SHAPES
  assert "wsd(decay_fraction=0.3)" in H.HAND_SCHEDULES
