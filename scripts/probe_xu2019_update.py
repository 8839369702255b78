"""What the authors' PPO update reads in the ``"xu2019"`` environment.

Runs one sampled episode of the ``xu2019_small`` set-up (MLP 128, batch 250,
300 steps, validation loss on 1,000 images) with an untrained actor and
prints, for the two choices of ``logprob_of``, the Gaussian density of the
value the surrogate reads (the multiplier, as the authors' code stores it,
or the sample the Gaussian drew), how often it is below the 1e-10 floor, and
the norm of the gradient of the mean log-density.

  python scripts/probe_xu2019_update.py          # about a minute on 2 cores
"""

import jax
import jax.numpy as jnp

from lrmeta.controllers.rl_xu2019 import ActorNet, Xu2019Config, init_actor
from lrmeta.rl import xu2019
from lrmeta.tasks import make_task


def main(seed: int = 5) -> None:
  task = make_task("fashion_mnist", "mlp", batch_size=250,
                   data_kwargs={"max_train": 50000, "num_val": 10000},
                   model_kwargs={"hidden": (128,)})
  cfg = Xu2019Config(total_steps=300, val_examples=1000)
  tc = xu2019.Xu2019TrainConfig()
  net = ActorNet(cfg.hidden)
  actor = init_actor(cfg, jax.random.fold_in(jax.random.key(0), 0))
  traj = jax.jit(lambda a, k: xu2019.episode(task, cfg, tc, a, k))(
      actor, jax.random.key(seed))
  mu = net.apply(actor, traj["obs"])
  print(f"actor mean over the episode: min {mu.min():.3f}, median "
        f"{jnp.median(mu):.3f}, max {mu.max():.3f}")
  for read in ("multiplier", "sample"):
    x = traj["multiplier"] if read == "multiplier" else traj["action"]
    p = jnp.exp(-0.5 * ((x - mu) / cfg.action_std) ** 2) / (
        cfg.action_std * jnp.sqrt(2 * jnp.pi))
    grad = jax.grad(lambda a, x=x: jnp.mean(xu2019._log_prob(  # pylint: disable=protected-access
        net.apply(a, traj["obs"]), x, cfg.action_std)))(actor)
    norm = jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grad)))
    print(f"logprob_of={read!r}: density median {jnp.median(p):.3g}, below "
          f"1e-10 on {float(jnp.mean(p < 1e-10)):.1%} of steps; gradient "
          f"norm {norm:.3g}")


if __name__ == "__main__":
  main()
