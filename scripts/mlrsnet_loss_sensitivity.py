"""How much an MLR-SNet reads its input: rate / gamma under a constant loss.

For each snapshot of a saved MLR-SNet controller (e.g. the authors'
published nets imported by ``scripts/import_mlrsnet.py``), feed a constant
training loss ``L`` for ``--steps`` steps from a zero LSTM state and report
the output ``sigmoid(.)`` = rate / gamma after the first step and after the
last, for each ``L`` in ``--losses`` and each cell semantics. The spread
``(max - min) / max`` over ``L`` says how much the rate depends on the loss.

  python scripts/import_mlrsnet.py "mlr_snet 1.pth" "mlr_snet 100.pth" \\
      "mlr_snet 200.pth" --out results/mlrsnet_published
  python scripts/mlrsnet_loss_sensitivity.py results/mlrsnet_published

(the ``.pth`` files are in the authors' repository
github.com/xjtushujun/MLR-SNet, folder ``meta-test/``; lrmeta does not ship
them). The last line is JSON: ``{semantics: {snapshot: {"L": [first, last],
...}}}``.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

from lrmeta import learned
from lrmeta.controllers.mlr_snet import SEMANTICS, mlr_snet_cell
from lrmeta.learned.mlr_snet import snapshots


def constant_loss_response(theta, loss: float, steps: int, semantics: str
                           ) -> tuple[float, float]:
  """``(output after step 1, output after step `steps`)`` under a constant
  input ``loss`` from a zero state."""
  hidden = theta["out"]["w"].shape[0]

  def body(carry, _):
    h, c = carry
    h, c, out = mlr_snet_cell(theta, jnp.asarray(loss, jnp.float32), h, c,
                              semantics)
    return (h, c), out

  zeros = jnp.zeros((hidden,), jnp.float32)
  _, outs = jax.lax.scan(body, (zeros, zeros), None, length=steps)
  return float(outs[0]), float(outs[-1])


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("folder", help="a saved MLR-SNet controller")
  p.add_argument("--steps", type=int, default=383,
                 help="constant-loss steps (383: one epoch of the authors' "
                 "CIFAR-10 meta-training)")
  p.add_argument("--losses", type=float, nargs="+",
                 default=[0.01, 0.05, 0.1, 0.3, 1.0, 2.3])
  args = p.parse_args(argv)
  saved = learned.load(args.folder)
  theta = saved.theta
  snaps = snapshots(theta) if "s0" in theta else [theta]
  names = [x["file"] for x in saved.config.get("imported_from", [])] or [
      f"s{i}" for i in range(len(snaps))]
  out: dict = {}
  for semantics in SEMANTICS:
    out[semantics] = {}
    print(f"\n{semantics}: rate / gamma after 1 and {args.steps} steps of a "
          "constant loss")
    print("| snapshot | " + " | ".join(f"L={x:g}" for x in args.losses)
          + " | spread (last) |")
    print("|---" * (len(args.losses) + 2) + "|")
    for name, th in zip(names, snaps):
      row = {x: constant_loss_response(th, x, args.steps, semantics)
             for x in args.losses}
      last = [v[1] for v in row.values()]
      spread = (max(last) - min(last)) / max(last)
      out[semantics][name] = {f"{k:g}": list(v) for k, v in row.items()}
      out[semantics][name]["spread"] = spread
      print(f"| {name} | " + " | ".join(f"{a:.4f} / {b:.4f}"
                                        for a, b in row.values())
            + f" | {100 * spread:.1f} % |")
  print(json.dumps(out))
  return out


if __name__ == "__main__":
  main()
