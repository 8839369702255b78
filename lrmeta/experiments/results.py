"""A results folder that explains itself: config, metrics, table, figures."""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any, Sequence

import numpy as np


def run_dir(path: str) -> pathlib.Path:
  p = pathlib.Path(path)
  p.mkdir(parents=True, exist_ok=True)
  return p


def write_config(out: pathlib.Path, cfg) -> None:
  (out / "config.json").write_text(cfg.to_json_best_effort(indent=2) + "\n")


def write_jsonl(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> None:
  with open(path, "w") as f:
    for r in rows:
      f.write(json.dumps(r, default=float) + "\n")


def write_csv(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> None:
  if not rows:
    return
  keys = list(rows[0])
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)


def mean_std(x) -> str:
  x = np.asarray(x, np.float64)
  if x.size == 1:
    return f"{x.mean():.4f}"
  return f"{x.mean():.4f} ± {x.std(ddof=1):.4f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]
                   ) -> str:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def plot_runs(path: pathlib.Path, curves: dict[str, dict[str, Any]],
              title: str) -> None:
  """One figure, three panels: LR per step, train loss, test accuracy.

  ``curves[method]`` holds ``lr`` and ``train_loss`` ([seeds, steps]) and
  ``eval_steps`` / ``test_acc`` ([seeds, evals]); seeds are averaged.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for name, c in curves.items():
    lr = np.nanmean(np.atleast_2d(c["lr"]), 0)
    axes[0].plot(lr, label=name)
    loss = np.nanmean(np.atleast_2d(c["train_loss"]), 0)
    k = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    axes[1].plot(np.arange(len(smooth)) + k - 1, smooth, label=name)
    acc = np.atleast_2d(c["test_acc"])
    axes[2].errorbar(c["eval_steps"], acc.mean(0),
                     yerr=acc.std(0) if acc.shape[0] > 1 else None,
                     label=name, capsize=2)
  axes[0].set(title="learning rate applied", xlabel="step", yscale="log")
  axes[1].set(title="training loss (smoothed)", xlabel="step", yscale="log")
  axes[2].set(title="test accuracy", xlabel="step")
  for a in axes:
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def curve(hist) -> dict[str, Any]:
  """The per-method entry :func:`plot_runs` takes, from a population's
  :class:`lrmeta.train.History`."""
  return {"lr": hist.steps["lr"], "train_loss": hist.steps["train_loss"],
          "eval_steps": hist.eval_steps, "test_acc": hist.evals["test_acc"]}


def eval_records(method: str, seeds, hist) -> list[dict[str, Any]]:
  """One ``metrics.jsonl`` record per (seed, evaluation) of a population."""
  return [{"method": method, "seed": int(seed), "step": int(step),
           **{k: float(v[i, j]) for k, v in hist.evals.items()}}
          for i, seed in enumerate(seeds)
          for j, step in enumerate(hist.eval_steps)]


def load_run(path: str | pathlib.Path) -> dict[str, Any]:
  """Reads a results folder written by ``lrmeta train`` back into arrays.

  Returns ``{"config": dict, "curves": {method: {...}}}`` where each method's
  entry has ``seeds``, ``lr``/``train_loss``/... as ``[seeds, steps]`` arrays
  (from ``history.csv``) and ``eval_steps`` plus ``val_acc``/``test_acc``/...
  as ``[seeds, evals]`` arrays (from ``metrics.jsonl``): the layout
  :func:`plot_runs` takes.
  """
  p = pathlib.Path(path)
  missing = [f for f in ("config.json", "history.csv", "metrics.jsonl")
             if not (p / f).exists()]
  if missing:
    raise FileNotFoundError(f"{p} is not an lrmeta results folder: missing "
                            f"{', '.join(missing)}")
  config = json.loads((p / "config.json").read_text())
  per: dict[str, dict[int, dict[str, list]]] = {}
  with open(p / "history.csv", newline="") as f:
    for row in csv.DictReader(f):
      d = per.setdefault(row.pop("method"), {}).setdefault(
          int(row.pop("seed")), {})
      for k, v in row.items():
        d.setdefault(k, []).append(float(v))
  evals: dict[str, dict[int, dict[str, list]]] = {}
  for line in (p / "metrics.jsonl").read_text().splitlines():
    r = json.loads(line)
    d = evals.setdefault(r.pop("method"), {}).setdefault(int(r.pop("seed")),
                                                         {})
    for k, v in r.items():
      d.setdefault(k, []).append(float(v))
  curves = {}
  for method, by_seed in per.items():
    seeds = sorted(by_seed)
    c = {"seeds": seeds}
    for k in by_seed[seeds[0]]:
      if k != "step":
        c[k] = np.array([by_seed[s][k] for s in seeds])
    ev = evals.get(method, {})
    if ev:
      c["eval_steps"] = np.array(ev[seeds[0]]["step"], int)
      for k in ev[seeds[0]]:
        if k != "step":
          c[k] = np.array([ev[s][k] for s in seeds])
    curves[method] = c
  return {"config": config, "curves": curves}
