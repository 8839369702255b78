# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Meta-training a learned LR controller, step by step
#
# The outer loop of lrmeta trains the meta-parameters `theta` of ANY
# controller: a pytree in, an Optax transformation out. This walk-through
#
# 1. wraps a controller as an *inner problem* (`TaskProblem`): train a model
#    with `make_optimizer(theta)`, score it on held-out data;
# 2. compares the meta-gradient estimators on it (full unrolled backprop,
#    antithetic ES, PES), which all sit behind one interface;
# 3. meta-trains the hypergradient rule's own rates (`log_lr0`, `log_beta`)
#    and MLR-SNet's LSTM weights with the same `MetaTrainer`.
#
# Real Fashion-MNIST throughout. `LRMETA_NOTEBOOK_SMALL=1` shrinks it to a
# few seconds per cell (the test suite runs it that way); the full setting
# takes minutes on a CPU.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402

from lrmeta.controllers.hypergradient import hd_sgd  # noqa: E402
from lrmeta.controllers.mlr_snet import (init_mlr_snet_params,  # noqa: E402
                                         mlr_snet_sgd)
from lrmeta.meta import (PES, AntitheticES, MetaTrainer,  # noqa: E402
                         TaskProblem, default_meta_optimizer, meta_train,
                         unrolled)
from lrmeta.tasks import make_task  # noqa: E402

SMALL = os.environ.get("LRMETA_NOTEBOOK_SMALL") == "1"
T = 8 if SMALL else 40            # inner steps per meta-gradient
META_STEPS = 4 if SMALL else 30   # outer steps
task = make_task("fashion_mnist", "mlp", batch_size=32,
                 data_kwargs={"max_train": 2000 if SMALL else 20000,
                              "num_val": 500 if SMALL else 1000},
                 model_kwargs={"hidden": (64,)})

# %% [markdown]
# ## 1. A controller with explicit meta-parameters
#
# Hypergradient descent adapts the rate online with its own rate `beta`.
# Here both the starting rate and `beta` become meta-parameters, in log
# space so the outer optimizer cannot make them negative.

# %%
def make_hd(theta):
  return hd_sgd(jnp.exp(theta["log_lr0"]), jnp.exp(theta["log_beta"]))


theta_hd = {"log_lr0": jnp.log(0.01), "log_beta": jnp.log(1e-3)}
problem = TaskProblem(task, make_hd, meta_batch_size=256)

# %% [markdown]
# ## 2. Three estimators of d(validation loss after T steps)/d(theta)

# %%
estimators = {
    "unrolled backprop": unrolled(problem, T),
    "antithetic ES (8 pairs)": AntitheticES(problem, horizon=T, num_pairs=8,
                                            sigma=0.05),
    "PES (8 pairs)": PES(problem, horizon=T, num_pairs=8, sigma=0.05),
}
key = jax.random.key(0)
grads = {}
for name, est in estimators.items():
  state = est.init(theta_hd, key)
  g, _, m = jax.jit(est.estimate)(theta_hd, state, jax.random.key(1))
  grads[name] = np.array([g["log_lr0"], g["log_beta"]])
  print(f"{name:>24}: meta-loss {float(m['meta_loss']):.4f}, "
        f"grad (log_lr0, log_beta) = {np.round(grads[name], 4)}")
ref = grads["unrolled backprop"]
for name, g in grads.items():
  cos = g @ ref / (np.linalg.norm(g) * np.linalg.norm(ref) + 1e-12)
  print(f"cosine to backprop, {name}: {cos:+.3f}")

# %% [markdown]
# ES and PES only need forward runs (no memory growth with T); with a few
# pairs their estimates are noisy, so the cosine above varies from seed to
# seed. Backprop through T steps is exact for this T.
#
# ## 3. The outer loop: any estimator, any Optax meta-optimizer
#
# `MetaTrainer.step` is pure (jit it); `meta_train` adds checkpoints,
# resume and logging. A diverging inner run is masked, never averaged in.

# %%
trainer = MetaTrainer([unrolled(problem, T, num_tasks=2)],
                      optax.adam(0.1), clip_norm=1.0)
state, hist_hd = meta_train(trainer, theta_hd, jax.random.key(2), META_STEPS)
print("HD meta-trained: lr0 = %.4g, beta = %.3g" % (
    float(jnp.exp(state.theta["log_lr0"])),
    float(jnp.exp(state.theta["log_beta"]))))

# %% [markdown]
# The same loop trains MLR-SNet: its LSTM weights are the meta-parameters.

# %%
theta_mlr = init_mlr_snet_params(jax.random.key(3))
problem_mlr = TaskProblem(task, lambda th: mlr_snet_sgd(th, 0.0),
                          meta_batch_size=256)
trainer_mlr = MetaTrainer([unrolled(problem_mlr, T, num_tasks=2)],
                          default_meta_optimizer(1e-3, 1e-4), clip_norm=1.0)
state_mlr, hist_mlr = meta_train(trainer_mlr, theta_mlr, jax.random.key(4),
                                 META_STEPS)

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(hist_hd["meta_loss"], label="HD (lr0, beta)")
ax[0].plot(hist_mlr["meta_loss"], label="MLR-SNet (LSTM)")
ax[0].set(title=f"meta-loss: val loss after {T} steps", xlabel="meta-step")
ax[0].legend()
ax[1].bar(list(grads), [np.linalg.norm(g) for g in grads.values()])
ax[1].set(title="meta-gradient norm by estimator")
ax[1].tick_params(axis="x", labelrotation=15)
fig.tight_layout()
meta_losses = {"hd": np.asarray(hist_hd["meta_loss"]),
               "mlr_snet": np.asarray(hist_mlr["meta_loss"])}

# %% [markdown]
# ## 4. Save the learned controller, reload it frozen
#
# `lrmeta.learned` is the one store of learned controllers: `save` writes
# theta with a config naming its kind, and `frozen` rebuilds the Optax
# transformation (and the training-loop signals it reads) for any budget.
# This is what `lrmeta evaluate` and `lrmeta train`'s `ckpt:PATH` methods
# use. Here the frozen MLR-SNet drives a plain Optax loop on a fresh network.

# %%
import tempfile

from lrmeta import learned
from lrmeta.learned import mlr_snet as mlr_store

ckpt_dir = tempfile.mkdtemp() + "/mlr_snet"
learned.save(ckpt_dir, jax.device_get(state_mlr.theta), mlr_store.config(
    hidden=50, num_classes=10, gamma=None, momentum=0.0, weight_decay=5e-4,
    trained_on=task.name))
opt, signals = learned.frozen(ckpt_dir, num_steps=T)
params, model_state = task.init(jax.random.key(5))
opt_state = opt.init(params)


def make_step(opt):
  """One jitted plain-Optax training step driven by ``opt``."""
  @jax.jit
  def step(params, opt_state, key):
    batch = task.train_batch(key)
    (loss, _), g = jax.value_and_grad(task.loss, has_aux=True)(
        params, model_state, batch)
    updates, opt_state = opt.update(g, opt_state, params, value=loss)
    return optax.apply_updates(params, updates), opt_state, loss
  return step


plain_step = make_step(opt)


for t in range(T):
  params, opt_state, loss = plain_step(params, opt_state,
                                       jax.random.key(100 + t))
frozen_eval = task.evaluate(params, model_state, "val")
print(f"frozen MLR-SNet from {ckpt_dir}: {T} plain Optax steps, val acc "
      f"{float(frozen_eval['accuracy']):.3f}")

# %% [markdown]
# ## 5. A learned schedule from the task family, in a plain Optax loop
#
# The learned schedule (`lrmeta.controllers.learned_schedule`) is
# `lr_base * exp(s(t/T) + r(loss features))`: 8 log-rate knots over the
# budget plus a bounded feedback MLP, 49 numbers, exactly constant SGD
# before training. `scripts/reproduce_learned_lr.py` meta-trains it by
# whole-run ES on the family of pooled-image MLP runs and saves it; this
# cell loads that saved schedule when it exists, and otherwise takes a few
# ES steps itself on two family shapes. Either way the result is a folder
# the store reads back, used here on the MLP task above for `T` steps.

# %%
import pathlib

from lrmeta.learned import learned_schedule as ls_store
from lrmeta.meta.family_es import FamilyES
from lrmeta.tasks.family import Instance
from lrmeta.train import applied_learning_rate

saved_dir = pathlib.Path("results/reproduce_learned_lr_small/seed0/stage2/"
                         "controller")
if not saved_dir.is_dir():
  ls_cfg = ls_store.config(base_lr=0.05, momentum=0.9)
  kind = learned.get("learned_schedule")
  shapes = (Instance("fashion_mnist", 7, (16,), batch_size=32, num_steps=30),
            Instance("fashion_mnist", 7, (32,), batch_size=32, num_steps=60))
  es = FamilyES(lambda n: (lambda th: kind.optimizer(th, ls_cfg, n)), shapes,
                num_pairs=4, sigma=0.1, shapes_per_step=2, perturb=("knots",))
  state_ls, _ = meta_train(MetaTrainer([es], optax.adam(0.05), clip_norm=None),
                           kind.init(jax.random.key(0), ls_cfg),
                           jax.random.key(1), 2 if SMALL else 20)
  saved_dir = pathlib.Path(tempfile.mkdtemp()) / "learned_schedule"
  learned.save(str(saved_dir), jax.device_get(state_ls.theta), ls_cfg)

saved = learned.load(str(saved_dir))
print("knots (lr / lr_base):",
      np.round(np.exp(np.asarray(saved.theta["knots"])), 3).tolist())
sched_opt, _ = saved.frozen(T)   # stretched over this run's budget

sched_step = make_step(sched_opt)
params, model_state = task.init(jax.random.key(5))
opt_state = sched_opt.init(params)
rates = []
for t in range(T):
  params, opt_state, loss = sched_step(params, opt_state,
                                       jax.random.key(100 + t))
  rates.append(float(applied_learning_rate(opt_state)))
print(f"learned schedule from {saved_dir}: rate {rates[0]:.4g} -> "
      f"{rates[-1]:.4g} over {T} steps, val acc "
      f"{float(task.evaluate(params, model_state, 'val')['accuracy']):.3f}")
