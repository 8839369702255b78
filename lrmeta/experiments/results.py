"""A results folder that explains itself: config, metrics, table, figures."""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any, Sequence

import numpy as np

from lrmeta.experiments.config import flatten
from lrmeta.experiments.rundir import run_folder


results_folder = run_folder  # every job writes through it


def write_config(out: pathlib.Path, cfg) -> None:
  """Writes ``config.json`` (the resolved config) and ``data.json``: for
  every dataset the run loads, where it is read from
  (:meth:`lrmeta.data.Source.as_dict`: label, kind, path, the chain step)."""
  from lrmeta.experiments.validate import check_data  # pylint: disable=import-outside-toplevel
  (out / "config.json").write_text(cfg.to_json_best_effort(indent=2) + "\n")
  sources = check_data(flatten(cfg))
  (out / "data.json").write_text(json.dumps(
      {name: src.as_dict() for name, src in sources.items()}, indent=1)
                                 + "\n")


def write_jsonl(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> None:
  with open(path, "w") as f:
    for r in rows:
      f.write(json.dumps(r, default=float) + "\n")


def write_csv(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> None:
  if not rows:
    return
  keys = list(dict.fromkeys(k for r in rows for k in r))  # union, in order
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)


def mean_std(x) -> str:
  """``"mean ± std"`` (sample std) of 2+ values; the value alone for one."""
  x = np.asarray(x, np.float64)
  if x.size == 1:
    return f"{x.mean():.4f}"
  return f"{x.mean():.4f} ± {x.std(ddof=1):.4f}"


def finite_mean_std(x, bad) -> str:
  """:func:`mean_std` over the runs that did not diverge, followed by
  ``(diverged k/n)`` when some did."""
  x, bad = np.asarray(x, np.float64), np.asarray(bad, bool)
  if bad.all():
    return f"diverged {bad.sum()}/{bad.size}"
  text = mean_std(x[~bad])
  return text + (f" (diverged {bad.sum()}/{bad.size})" if bad.any() else "")


def result_rows(results, metrics=("test_acc", "val_acc", "test_loss")
                ) -> list[list[str]]:
  """Table rows ``[method, base lr, <metrics>...]`` of
  :func:`lrmeta.protocol.compare` results; each metric is the
  final evaluation, mean ± std over the runs that did not diverge."""
  rows = []
  for name, r in results.items():
    bad = ~np.asarray(r.hist.finite())
    lr = "-" if r.lr is None else f"{r.lr:g}"
    rows.append([name, lr] + [finite_mean_std(r.hist.final(m), bad)
                              for m in metrics])
  return rows


def clip_note(results) -> str:
  """A sentence naming the methods whose controller clipped its rate at its
  bounds (the ``clipped`` step metric), or ``""``."""
  parts = []
  for name, r in results.items():
    if "clipped" in r.hist.steps:
      last = np.atleast_2d(np.asarray(r.hist.steps["clipped"]))[:, -1]
      steps = np.asarray(r.hist.steps["train_loss"]).shape[-1]
      if last.max() > 0:
        parts.append(f"{name}: {int(last.max())} of {steps} steps (most "
                     f"in a run)")
  return ("Rates clipped at a controller's bounds: " + "; ".join(parts) + "."
          if parts else "")


def write_summary(out: pathlib.Path, title: str, sections) -> str:
  """Writes ``summary.md``: a title, then per section an optional heading,
  a note (what ran, on what data, seeds) and a table. Returns the text."""
  lines = [f"# {title}", ""]
  for heading, note, table in sections:
    if heading:
      lines += [f"## {heading}", ""]
    lines += [note, "", table]
  text = "\n".join(lines)
  (out / "summary.md").write_text(text)
  return text


def write_comparison(out: pathlib.Path, title: str, results, note: str,
                     table: str, output_dir: str) -> str:
  """The report of a one-task comparison: ``summary.md`` (note and table),
  ``timings.json``, ``curves.png``; prints the summary and where it went
  (``output_dir``, the folder the results land in). Returns the text."""
  text = write_summary(out, title, [(None, note, table)])
  write_timings(out, {n: r.hist.wall_time for n, r in results.items()})
  plot_runs(out / "curves.png",
            {n: curve(r.hist) for n, r in results.items()}, title)
  print(f"\n{text}\nresults written to {output_dir}/", flush=True)
  return text


def write_timings(out: pathlib.Path, seconds: dict[str, float]) -> None:
  """Wall times (load-dependent) go to ``timings.json``, not beside the
  results."""
  (out / "timings.json").write_text(json.dumps(
      {k: round(float(v), 2) for k, v in seconds.items()}, indent=1) + "\n")


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
  ``eval_steps`` / ``test_acc`` ([seeds, evals]). Curves are means over the
  seeds that stay finite; the loss is smoothed by a running mean over 2 % of
  the run; error bars are ± one standard deviation over seeds (a caption
  under the panels says so).
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for name, c in curves.items():
    keep = np.asarray(c.get("finite", True))
    if keep.ndim and keep.any() and not keep.all():  # drop diverged runs
      c = {**c, **{k: np.atleast_2d(c[k])[keep]
                   for k in ("lr", "train_loss", "test_acc")}}
      name = f"{name} ({int((~keep).sum())} diverged, left out)"
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
  axes[0].set(title="learning rate applied", xlabel="step",
              ylabel="learning rate", yscale="log")
  axes[1].set(title="training loss (smoothed)", xlabel="step",
              ylabel="minibatch cross-entropy", yscale="log")
  axes[2].set(title="test accuracy", xlabel="step", ylabel="accuracy")
  for a in axes:
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
  fig.suptitle(title)
  fig.text(0.5, 0.01, "Mean over seeds (non-finite runs left out); training "
           "loss: running mean over 2% of the run; error bars: ± 1 std over "
           "seeds.", ha="center", fontsize=8)
  fig.tight_layout(rect=(0, 0.04, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_meta_trace(path: pathlib.Path, trace: list[dict], title: str
                    ) -> None:
  """Meta-training at a glance: the meta-objective and the inner rate at the
  last inner step, per meta-step (``meta_metrics.jsonl`` records)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  steps = [r["meta_step"] for r in trace]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  axes[0].plot(steps, [r["meta_loss"] for r in trace], marker=".")
  axes[0].set(title="meta-objective", xlabel="meta-step",
              ylabel="meta-set loss")
  axes[1].plot(steps, [r["inner_lr_last"] for r in trace], marker=".")
  axes[1].set(title="inner LR at the last inner step", xlabel="meta-step",
              ylabel="learning rate", yscale="log")
  for a in axes:
    a.grid(alpha=0.3)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_family_meta(path: pathlib.Path, traces: dict[str, list[dict]],
                     title: str) -> None:
  """Family meta-training at a glance, one line per run (label -> the
  ``meta_metrics.jsonl`` records): the validation meta-objective where it
  was evaluated, and the ES fitness of each meta-step (mean over its
  perturbed runs, a noisy estimate of the same quantity)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for label, trace in traces.items():
    val = [(r["meta_step"], r["val_objective"]) for r in trace
           if "val_objective" in r]
    axes[0].plot(*zip(*val), marker=".", label=label)
    fit = [(r["meta_step"], r["meta_loss"]) for r in trace if "meta_loss" in r]
    if fit:
      axes[1].plot(*zip(*fit), alpha=0.7, label=label)
  axes[0].set(title="validation meta-objective (fixed runs)",
              xlabel="meta-step", ylabel="loss / constant-SGD loss")
  axes[1].set(title="ES fitness per meta-step (fresh instances)",
              xlabel="meta-step", ylabel="loss / constant-SGD loss")
  for a in axes:
    a.axhline(1.0, color="grey", lw=0.8, ls=":")
    a.grid(alpha=0.3)
    a.legend(fontsize=7)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_family_rates(path: pathlib.Path,
                      curves: dict[str, dict[str, Any]], title: str) -> None:
  """The applied learning rate against the fraction of the budget, one
  panel per instance (``instance -> {method: rate per step}``, each the
  mean over seeds), log scale."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  n = len(curves)
  cols = min(3, n)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows),
                           squeeze=False)
  for ax, (name, methods) in zip(axes.flat, curves.items()):
    for method, rate in methods.items():
      rate = np.asarray(rate, np.float64)
      ax.plot(np.arange(rate.size) / rate.size, rate, label=method)
    ax.set_yscale("log")
    ax.set_title(name, fontsize=7)
    ax.set_xlabel("t / T", fontsize=7)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)
  for ax in list(axes.flat)[n:]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=7)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_rl_training(path: pathlib.Path, history: list[dict], title: str
                     ) -> None:
  """RL training at a glance: mean episode return, final validation
  accuracy and final learning rate per iteration, one line per training
  task of the family."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  h = {k: np.asarray([m.get(k, np.nan) for m in history]) for k in
       ("episode_return", "final_val_acc", "final_lr", "env_index")}
  h["env_index"] = np.nan_to_num(h["env_index"]).astype(int)
  x = np.arange(1, len(history) + 1)
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for ax, (k, lab) in zip(axes, [("episode_return", "mean episode return"),
                                 ("final_val_acc", "final val accuracy"),
                                 ("final_lr", "final learning rate")]):
    for e in np.unique(h["env_index"]):
      sel = h["env_index"] == e
      ax.plot(x[sel], h[k][sel], marker=".",
              label=f"training task {e}" + (" (clean)" if e == 0 else ""))
    ax.set(title=lab, xlabel="iteration", ylabel=lab)
    ax.grid(alpha=0.3)
  if len(np.unique(h["env_index"])) > 1:
    axes[0].legend(fontsize=8)
  axes[2].set_yscale("log")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def curve(hist) -> dict[str, Any]:
  """The per-method entry :func:`plot_runs` takes, from a population's
  :class:`lrmeta.train.History`."""
  return {"lr": hist.steps["lr"], "train_loss": hist.steps["train_loss"],
          "eval_steps": hist.eval_steps, "test_acc": hist.evals["test_acc"],
          "finite": np.atleast_1d(hist.finite())}


def eval_records(method: str, seeds, hist, **extra) -> list[dict[str, Any]]:
  """One ``metrics.jsonl`` record per (seed, evaluation) of a population
  (``extra`` fields, e.g. ``task``, are added to each), with the step at
  which the run diverged (``-1`` if it did not)."""
  at = np.atleast_1d(hist.diverged_at)
  return [{"method": method, "seed": int(seed), "step": int(step), **extra,
           **{k: float(v[i, j]) for k, v in hist.evals.items()},
           "diverged_at": int(at[i])}
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
        if v != "":  # a metric other methods record (e.g. ``clipped``)
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


def family_table_rows(results, reference: tuple[str, str],
                      others: Sequence[tuple[str, str]]) -> list[list[str]]:
  """Rows ``[method, instance, accuracy difference, loss difference,
  verdict]`` of each of ``others`` minus ``reference`` (each a
  ``(method, "instance" | "family")`` of
  :func:`lrmeta.protocol.compare_family` results), one per shape
  and one pooled. Differences are ``mean [95 % interval] (n pairs)`` from
  :func:`lrmeta.protocol.family_differences`; the verdict
  (:func:`lrmeta.protocol.verdict`) is "better" / "worse" when the accuracy
  interval lies above / below 0, else "tie"."""
  from lrmeta.protocol import family_differences, verdict  # pylint: disable=import-outside-toplevel

  def cell(d, digits):
    return (f"{d['mean']:+.{digits}f} [{d['ci_low']:+.{digits}f}, "
            f"{d['ci_high']:+.{digits}f}] (n={d['n']})")

  rows = []
  for other in others:
    diff = family_differences(results, other, reference)
    label = f"{other[0]} ({other[1]})"
    items = list(diff["per_instance"].items()) + [("pooled", diff["pooled"])]
    for shape, d in items:
      rows.append([label, shape, cell(d["acc"], 2), cell(d["loss"], 3),
                   verdict(d["acc"])])
  return rows


def write_family_table(path: pathlib.Path, results,
                       reference: tuple[str, str],
                       others: Sequence[tuple[str, str]]) -> str:
  """Writes the markdown table of :func:`family_table_rows` to ``path``
  under a line naming the reference; returns the text."""
  ref = f"{reference[0]} ({reference[1]})"
  text = (f"Test differences against {ref} (accuracy in points, final test "
          f"loss; 95 % paired t intervals; a diverged run counts as accuracy "
          f"0 and is left out of the loss):\n\n" + markdown_table(
              ["method", "instance", f"accuracy - {ref}", f"loss - {ref}",
               "verdict"], family_table_rows(results, reference, others)))
  pathlib.Path(path).write_text(text)
  return text
