# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Reading a results folder
#
# Every `lrmeta train` run writes one folder: `config.json` (the resolved
# config), `history.csv` (per-step learning rate, loss, gradient norm, per
# method and seed), `metrics.jsonl` (evaluations), `summary.md` and
# `curves.png`. This notebook loads one back and re-plots it, e.g. to put
# runs from different folders on one figure.
#
# Set `LRMETA_RESULTS` to a folder (default: `results/fashion_mnist`, the
# main job's output). With `LRMETA_NOTEBOOK_SMALL=1` (the test suite) it
# first runs the small main job into a temporary folder.

# %%
import os
import pathlib
import tempfile

import matplotlib
import numpy as np

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402

from lrmeta.experiments.results import load_run  # noqa: E402

SMALL = os.environ.get("LRMETA_NOTEBOOK_SMALL") == "1"
folder = pathlib.Path(os.environ.get("LRMETA_RESULTS",
                                     "results/fashion_mnist"))
if SMALL:
  from lrmeta.cli import main as lrmeta_cli  # noqa: E402
  folder = pathlib.Path(tempfile.mkdtemp()) / "fmnist_small"
  lrmeta_cli(["train", "--config", "configs/fashion_mnist.py:small",
              "--quiet", f"--config.output_dir={folder}",
              "--config.methods=('constant', 'cosine')",
              "--config.train.epochs=0.5"])

run = load_run(folder)
cfg = run["config"]
print(f"{cfg['name']}: {cfg['task']['dataset']} / {cfg['task']['model']}, "
      f"seeds {cfg['seeds']}")
for method, c in run["curves"].items():
  acc = c["test_acc"][:, -1]
  print(f"  {method:>10}: final test acc {acc.mean():.4f} ± {acc.std():.4f} "
        f"over {len(c['seeds'])} seed(s), {c['lr'].shape[1]} steps")

# %%
fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
for method, c in run["curves"].items():
  ax[0].plot(c["lr"].mean(0), label=method)
  loss = c["train_loss"].mean(0)
  k = max(1, len(loss) // 30)
  ax[1].plot(np.convolve(loss, np.ones(k) / k, mode="valid"), label=method)
  m, s = c["test_acc"].mean(0), c["test_acc"].std(0)
  ax[2].plot(c["eval_steps"], m, marker="o", label=method)
  ax[2].fill_between(c["eval_steps"], m - s, m + s, alpha=0.2)
ax[0].set(title="learning rate", xlabel="step")
ax[1].set(title="training loss (smoothed)", xlabel="step", yscale="log")
ax[2].set(title="test accuracy (mean ± std over seeds)", xlabel="step")
for a in ax:
  a.legend(fontsize=8)
fig.tight_layout()
summary = {m: float(c["test_acc"][:, -1].mean())
           for m, c in run["curves"].items()}
