"""Makes the MLR-SNet parity fixture: small random state dicts in the
authors' layout and the rates a PyTorch run of the authors' cells gives.

Needs torch (not a dependency of lrmeta; the tests read the fixture without
it). Writes ``tests/data/mlrsnet_parity/``:

* ``s0.pth``, ``s1.pth``, ``s2.pth``: three state dicts of the authors'
  one-layer ``MLRSNet(1, HIDDEN)`` (``meta-test/model/network.py`` lines
  120-163), random weights (PyTorch's default init under fixed seeds), saved
  in the legacy ``torch.save`` format of the published nets; ``s0_zip.pth``:
  ``s0`` in the zip format.
* ``losses.npy``: a fixed loss sequence of ``STEPS`` steps.
* ``rates_meta_test.npy`` / ``rates_meta_train.npy``: the rate of every
  step, ``gamma * MLRSNet(loss)``, with the snapshots switched at
  ``STEPS // 3`` and ``2 * (STEPS // 3)``, the LSTM state carried across the
  switches and ``gamma`` computed from the loss of step 0 and of each switch
  step, as ``meta-test/meta_test.py`` lines 52, 60-92 and 105-107 do (with
  the minibatch loss in place of the training-set loss).

The cells below are written from the equations of ``network.py`` lines
137-151 (``"meta_test"``: gates in, forget, transform, out) and
``meta-train/image-classification/module.py`` lines 295-310
(``"meta_train"``: in, forget, out, transform; forget gate
``sigmoid(f - 1)``); the code is not copied.

  python scripts/make_mlrsnet_fixture.py
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib

import numpy as np
import torch
from torch import nn

HIDDEN = 8
STEPS = 1200
NUM_CLASSES = 10
OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / (
    "mlrsnet_parity")


class Cell(nn.Module):
  """One MLR-SNet LSTM cell with the authors' module names."""

  def __init__(self, hidden: int, semantics: str):
    super().__init__()
    self.hidden, self.semantics = hidden, semantics
    self.fc_i2h = nn.Sequential(nn.Linear(1, hidden // 2), nn.ReLU(),
                                nn.Linear(hidden // 2, 4 * hidden))
    self.fc_h2h = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                nn.Linear(hidden // 2, 4 * hidden))

  def forward(self, x, h, c):
    a, b, u, v = (self.fc_i2h(x) + self.fc_h2h(h)).split(self.hidden, 1)
    if self.semantics == "meta_test":
      i, f, g, o = torch.sigmoid(a), torch.sigmoid(b), torch.tanh(u), (
          torch.sigmoid(v))
    else:
      i, f, o, g = torch.sigmoid(a), torch.sigmoid(b - 1), torch.sigmoid(
          u), torch.tanh(v)
    c = f * c + i * g
    return o * torch.tanh(c), c


class Net(nn.Module):
  """``MLRSNet(1, hidden)``: the cell as ``layer1``, output ``layer3``."""

  def __init__(self, hidden: int, semantics: str):
    super().__init__()
    self.layer1 = Cell(hidden, semantics)
    self.layer3 = nn.Linear(hidden, 1)

  def forward(self, x, h, c):
    h, c = self.layer1(x, h, c)
    return torch.sigmoid(self.layer3(h)), h, c


def gamma(loss: float, num_classes: int) -> float:
  return abs(math.sqrt(loss) * math.log(loss * num_classes)
             / num_classes ** 0.25 / 4)


def losses(steps: int) -> np.ndarray:
  rng = np.random.RandomState(0)
  t = np.arange(steps)
  x = 2.3 * np.exp(-t / (steps / 3)) + 0.05 + 0.3 * rng.rand(steps)
  return x.astype(np.float32)


def reference_rates(state_dicts, semantics: str, loss_seq: np.ndarray
                    ) -> np.ndarray:
  n = len(loss_seq)
  switch = (n // 3, 2 * (n // 3))
  net = Net(HIDDEN, semantics)
  h = torch.zeros(1, HIDDEN)
  c = torch.zeros(1, HIDDEN)
  rates, g = [], None
  with torch.no_grad():
    for t, loss in enumerate(loss_seq):
      if t == 0 or t in switch:
        net.load_state_dict(state_dicts[0 if t == 0 else switch.index(t) + 1])
        g = gamma(float(loss), NUM_CLASSES)
      out, h, c = net(torch.tensor([[float(loss)]]), h, c)
      rates.append(float(out) * g)
  return np.asarray(rates, np.float64)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default=str(OUT))
  args = p.parse_args(argv)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  dicts = []
  for i in range(3):
    torch.manual_seed(100 + i)
    sd = Net(HIDDEN, "meta_test").state_dict()
    dicts.append(sd)
    torch.save(sd, out / f"s{i}.pth", _use_new_zipfile_serialization=False)
  torch.save(dicts[0], out / "s0_zip.pth")
  loss_seq = losses(STEPS)
  np.save(out / "losses.npy", loss_seq)
  summary = {"hidden": HIDDEN, "steps": STEPS, "num_classes": NUM_CLASSES}
  for semantics in ("meta_test", "meta_train"):
    rates = reference_rates(dicts, semantics, loss_seq)
    np.save(out / f"rates_{semantics}.npy", rates)
    summary[semantics] = {"first": rates[0], "last": rates[-1]}
  print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
