# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # lrmeta quickstart
#
# Drop an lrmeta controller into an Optax chain and train the small CNN on
# real Fashion-MNIST, then compare it with a hand-designed LRBench policy.
# Open with `jupytext --to notebook notebooks/quickstart.py` (or run it as a
# script). `LRMETA_NOTEBOOK_SMALL=1` shrinks it to seconds (the test suite
# runs it that way).

# %%
import os

import jax
import matplotlib
import optax

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402

from lrmeta.controllers import hd_sgd  # noqa: E402
from lrmeta.schedules import parse_spec, schedule_from_spec  # noqa: E402
from lrmeta.tasks import make_task  # noqa: E402
from lrmeta.train import train  # noqa: E402

SMALL = os.environ.get("LRMETA_NOTEBOOK_SMALL") == "1"
STEPS = 40 if SMALL else 430
task = make_task("fashion_mnist", "small_cnn",
                 batch_size=32 if SMALL else 128,
                 data_kwargs={"max_train": 2000 if SMALL else None,
                              "num_val": 500 if SMALL else 5000})

# %% [markdown]
# A hand-designed policy from a plain-data spec, and hypergradient descent
# around SGD with momentum (the rate adapts online from g_t . u_{t-1}).

# %%
policy = schedule_from_spec(parse_spec(f"cos(k0=0.001, k1=0.05, l={STEPS})"))
optimizers = {
    "cosine (LRBench cos)": optax.inject_hyperparams(optax.sgd)(
        learning_rate=policy, momentum=0.9),
    "HD-SGD, start 0.01": optax.chain(optax.clip_by_global_norm(5.0),
                                      hd_sgd(0.01, hyper_lr=1e-3, momentum=0.9)),
}
histories = {}
for name, opt in optimizers.items():
  _, hist = train(task, opt, jax.random.key(0), STEPS,
                  eval_every=STEPS // 2, progress=not SMALL,
                  eval_examples=500 if SMALL else None)
  histories[name] = hist
  print(f"{name:>24}: test acc {hist.final('test_acc'):.4f}, "
        f"final lr {hist.steps['lr'][-1]:.4g}")

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
for name, h in histories.items():
  ax[0].plot(h.steps["lr"], label=name)
  ax[1].plot(h.steps["train_loss"], label=name, alpha=0.7)
ax[0].set(title="learning rate applied", xlabel="step")
ax[1].set(title="training loss", xlabel="step", yscale="log")
ax[0].legend()
fig.tight_layout()
