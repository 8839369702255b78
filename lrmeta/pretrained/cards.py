"""Writing a shipped controller: its weights, its card and the card's
reference rate trajectory (``scripts/pretrained_card.py`` calls this)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from lrmeta import learned
from lrmeta.pretrained import (REFERENCE_STEPS, _to_json, _to_tree,
                               reference_rates)


def reference(saved: learned.SavedController,
              steps: int = REFERENCE_STEPS) -> dict[str, Any]:
  """The card's reference: the rate at each of ``steps`` steps of the
  fixed input, at the saved base rate over a budget of ``steps``."""
  tx = saved.frozen(steps).optimizer
  return {"total_steps": steps, "base_lr": saved.config.get("base_lr"),
          "inputs": "lrmeta.pretrained.reference_inputs(steps)",
          "rates": [float(r) for r in reference_rates(tx, steps)]}


def _fmt(d: dict) -> str:
  return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"


def card_markdown(card: dict) -> str:
  """``card.md``: the card as a page."""
  lines = [f"# {card['name']}", "", card["description"], "",
           f"- kind: `{card['kind']}`, base optimizer: {card['optimizer']}, "
           f"trained base rate: {card['base_lr']}",
           f"- trained on: {card['trained_on']}",
           f"- command: `{card['command']}`",
           f"- code commit: `{card['commit']}`",
           f"- ran on: {card['ran_on']}",
           f"- validation meta-objective: {card['meta_objective']}", "",
           "## Held-out table", "", card["heldout"]["note"], "",
           "| comparison | test accuracy, points, 95 % paired interval |",
           "|---|---|"]
  for row, d in card["heldout"]["rows"].items():
    lines.append(f"| {row} | {_fmt(d)} |")
  ref = card["reference"]
  r = np.asarray(ref["rates"])
  lines += ["", "## Reference rate trajectory", "",
            f"On `{ref['inputs']}` ({ref['total_steps']} steps, base rate "
            f"{ref['base_lr']}): rate at steps 0, 50, 100, 150, "
            f"{ref['total_steps'] - 1}: "
            + ", ".join(f"{r[i]:.5g}" for i in (0, 50, 100, 150, len(r) - 1))
            + " (every step in `card.json`).", ""]
  return "\n".join(lines)


def write(folder: pathlib.Path, name: str, saved: learned.SavedController,
          info: dict[str, Any]) -> dict:
  """Writes ``weights.json``, ``card.json`` and ``card.md`` of ``name``
  into ``folder``; ``info`` holds the card's text fields and held-out
  table. The reference trajectory is computed from the weights as written
  (read back), as a user's install reads them."""
  folder.mkdir(parents=True, exist_ok=True)
  weights = {"config": saved.config, "theta": _to_json(saved.theta)}
  (folder / "weights.json").write_text(json.dumps(weights, indent=1) + "\n")
  shipped = learned.SavedController(saved.controller,
                                    _to_tree(weights["theta"]), saved.config)
  card = {"name": name, "kind": saved.kind,
          "optimizer": saved.config.get("optimizer", "sgd"),
          "base_lr": saved.config.get("base_lr"), **info,
          "reference": reference(shipped)}
  (folder / "card.json").write_text(json.dumps(card, indent=1) + "\n")
  (folder / "card.md").write_text(card_markdown(card))
  return card
