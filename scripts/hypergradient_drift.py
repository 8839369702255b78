"""Where HD's rate goes: the hypergradient's sign at frozen rates.

HD-SGD (Baydin et al. 2018) changes its rate by ``-beta * h_t`` each step,
with ``h_t = dL/d alpha = -g_t . g_{t-1}`` for plain SGD (``g`` after the
clip, as the controller sees it). So ``drift(alpha) = E[g_t . g_{t-1}]``
measured at a *fixed* rate says which way HD moves from there: up where it is
positive, down where it is negative. The rate where the drift crosses zero is
HD's fixed point, the rate it settles at whatever its start.

This script runs plain SGD at each rate of ``--rates`` (HD with
hypergradient rate 0, so the rate stays put and its state records ``h_t``
every step), for each batch size of ``--batch_sizes``, ``--seeds`` each, the
rates x seeds of one batch size as one vmapped population. It prints, per
batch size: the mean drift at each rate over the first, middle and last third
of the run (with its standard error over seeds x steps), HD's fixed point in
each third (geometric interpolation between the grid rates where the sign
changes), and the rate that gives the best mean validation accuracy at the end
of the run (lr*, what ``reproduce_hypergradient.py`` tunes). If the fixed
point lies below ``lr*/10``, HD started at ``lr*/10`` lowers its rate: it
cannot end near tuned SGD.

Writes ``drift.md``, ``drift.png`` and ``drift.json`` to ``--out``; the last
line printed is a JSON object (``fixed_point`` and ``lr_star`` keyed by batch
size).

  python scripts/hypergradient_drift.py             # 156 steps, batch 32/128/512
  python scripts/hypergradient_drift.py --tiny      # seconds, for tests
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from lrmeta.controllers.hypergradient import hd_sgd
from lrmeta.tasks import make_task
from lrmeta.train.state import init_state, train_step

WINDOWS = ("first third", "middle third", "last third")


def frozen_rate_drift(task, rates, seeds, num_steps: int, clip: float,
                      chunk: int = 26, progress: bool = True):
  """Per-step ``g_t . g_{t-1}`` of plain SGD at each frozen rate.

  Args:
    task: the training task (its batch size is used).
    rates: the fixed learning rates.
    seeds: one run per (rate, seed).
    num_steps: steps per run.
    clip: global-norm clip in front of SGD (0: none).
    chunk: steps per jitted call (for the progress bar).
    progress: show a progress bar.

  Returns:
    ``(drift, val_acc)``: ``drift[r, s, t] = g_t . g_{t-1}`` (zero at
    ``t = 0``), ``val_acc[r, s]`` the validation accuracy at the end.
  """
  def make(lr):
    # Hypergradient rate 0: the rate never moves; the state still holds h_t.
    tx = hd_sgd(lr, 0.0)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip > 0 else tx

  lr_vec = jnp.asarray(np.repeat(np.asarray(rates, np.float32), len(seeds)))
  keys = jnp.stack([jax.random.key(s) for s in seeds] * len(rates))
  states = jax.vmap(lambda lr, k: init_state(task, make(lr), k))(lr_vec, keys)

  def hypergradient(opt_state):
    (_, h), = optax.tree_utils.tree_get_all_with_path(opt_state,
                                                      "hypergradient")
    return h

  def member(lr, s, n):
    opt = make(lr)
    def body(s, _):
      s, _ = train_step(task, opt, s)
      return s, -hypergradient(s.opt_state)
    return jax.lax.scan(body, s, None, length=n)

  runs = {}
  out = []
  bar = tqdm(total=num_steps, desc=f"drift, batch {task.batch_size}",
             disable=not progress)
  done = 0
  while done < num_steps:
    n = min(chunk, num_steps - done)
    if n not in runs:
      runs[n] = jax.jit(jax.vmap(lambda lr, s, n=n: member(lr, s, n)))
    states, d = runs[n](lr_vec, states)
    out.append(np.asarray(d))
    done += n
    bar.update(n)
  bar.close()
  evaluate = jax.jit(jax.vmap(lambda s: task.evaluate(
      s.params, s.model_state, "val")["accuracy"]))
  val_acc = np.asarray(evaluate(states))
  shape = (len(rates), len(seeds))
  return (np.concatenate(out, axis=1).reshape(shape + (num_steps,)),
          val_acc.reshape(shape))


def fixed_point(rates, drift_means) -> float:
  """The rate where the drift turns from positive to negative.

  Geometric interpolation between the two grid rates around the first sign
  change; ``inf`` if it is positive at every rate (HD rises from all of them),
  ``0`` if negative at every rate.
  """
  rates, d = np.asarray(rates, float), np.asarray(drift_means, float)
  if d[0] <= 0:
    return 0.0
  for i in range(len(rates) - 1):
    if d[i] > 0 >= d[i + 1]:
      w = d[i] / (d[i] - d[i + 1])
      return float(np.exp((1 - w) * np.log(rates[i]) + w * np.log(rates[i + 1])))
  return float("inf")


def summarise(rates, drift, val_acc):
  """Windowed drift means / standard errors, fixed points and lr*."""
  steps = drift.shape[-1]
  edges = np.linspace(1, steps, len(WINDOWS) + 1).astype(int)
  windows = []
  for w in range(len(WINDOWS)):
    x = drift[..., edges[w]:edges[w + 1]]
    x = x.reshape(len(rates), -1)
    mean, sem = x.mean(-1), x.std(-1) / np.sqrt(x.shape[-1])
    windows.append({"name": WINDOWS[w], "steps": [int(edges[w]),
                                                  int(edges[w + 1])],
                    "mean": mean.tolist(), "sem": sem.tolist(),
                    "fixed_point": fixed_point(rates, mean)})
  val = val_acc.mean(-1)
  return {"windows": windows, "val_acc": val.tolist(),
          "lr_star": float(np.asarray(rates)[int(np.argmax(val))])}


def _table(rates, by_batch, header):
  lines = [header, ""]
  for b, s in by_batch.items():
    lines += [f"**batch {b}** (lr* = {s['lr_star']:g}, lr*/10 = "
              f"{s['lr_star'] / 10:g}; steps {s['num_steps']}, "
              f"{s['epochs']:.2f} epochs)", "",
              "| rate | val acc (end) | " + " | ".join(
                  f"drift, {w['name']} (steps {w['steps'][0]}-"
                  f"{w['steps'][1] - 1})" for w in s["windows"]) + " |",
              "|---" * (2 + len(s["windows"])) + "|"]
    for i, r in enumerate(rates):
      cells = [f"{w['mean'][i]:+.3g} ± {w['sem'][i]:.2g}"
               for w in s["windows"]]
      lines.append(f"| {r:g} | {100 * s['val_acc'][i]:.2f} | "
                   + " | ".join(cells) + " |")
    lines.append("| HD's fixed point | | " + " | ".join(
        f"{w['fixed_point']:.3g}" for w in s["windows"]) + " |")
    lines.append("")
  return "\n".join(lines)


def _plot(path, rates, by_batch):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(WINDOWS), figsize=(4.2 * len(WINDOWS), 3.6))
  for w, ax in enumerate(axes):
    for b, s in by_batch.items():
      win = s["windows"][w]
      line, = ax.plot(rates, win["mean"], "o-", label=f"batch {b}")
      ax.axvline(s["lr_star"] / 10, color=line.get_color(), ls=":", lw=1)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("frozen learning rate")
    ax.set_title(WINDOWS[w])
  axes[0].set_ylabel("drift E[g_t . g_{t-1}] (HD's direction)")
  axes[0].legend(fontsize=8, title="dotted: lr*/10")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default="results/hypergradient_drift")
  p.add_argument("--rates", type=float, nargs="+",
                 default=[0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
  p.add_argument("--batch_sizes", type=int, nargs="+", default=[32, 128, 512])
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
  p.add_argument("--steps", type=int, default=156,
                 help="steps per run (156 = reproduce_hypergradient --small)")
  p.add_argument("--clip", type=float, default=1.0)
  p.add_argument("--max_train", type=int, default=20000)
  p.add_argument("--model", default="small_cnn")
  p.add_argument("--tiny", action="store_true",
                 help="an MLP on 1,000 images, 12 steps (for tests)")
  p.add_argument("--quiet", action="store_true")
  args = p.parse_args(argv)
  if args.tiny:
    args.model, args.max_train, args.steps = "mlp", 1000, 12
  t0 = time.perf_counter()
  by_batch = {}
  for b in args.batch_sizes:
    task = make_task("fashion_mnist", args.model, batch_size=b,
                     data_kwargs={"max_train": args.max_train,
                                  "num_val": 500 if args.tiny else 5000})
    drift, val = frozen_rate_drift(task, args.rates, args.seeds, args.steps,
                                   args.clip, progress=not args.quiet)
    s = summarise(args.rates, drift, val)
    s.update(num_steps=args.steps,
             epochs=args.steps * b / task.dataset.num_train)
    by_batch[b] = s
  wall = time.perf_counter() - t0
  clip = f"clip_by_global_norm({args.clip:g}) + " if args.clip > 0 else ""
  header = (
      f"Fashion-MNIST {args.model}, {args.max_train} training images, base "
      f"{clip}plain SGD at frozen rates, seeds {args.seeds}. drift = mean of "
      "g_t . g_{t-1} over the window's steps and the seeds (± standard error): "
      "HD-SGD's rate moves by beta x drift per step, so it rises where the "
      "drift is positive and falls where it is negative. lr* = best mean "
      f"validation accuracy at the end. Wall {wall:.0f} s "
      f"({jax.default_backend()}).")
  table = _table(args.rates, by_batch, header)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "drift.md").write_text(table + "\n")
  _plot(out / "drift.png", args.rates, by_batch)
  (out / "drift.json").write_text(json.dumps(
      {"args": vars(args), "rates": args.rates, "wall_s": wall,
       "by_batch": {str(b): s for b, s in by_batch.items()}}, indent=1))
  print(table)
  print(json.dumps({
      "fixed_point": {str(b): [w["fixed_point"] for w in s["windows"]]
                      for b, s in by_batch.items()},
      "lr_star": {str(b): s["lr_star"] for b, s in by_batch.items()}}))


if __name__ == "__main__":
  main()
