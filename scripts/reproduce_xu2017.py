"""Xu, Qin, Wang, Liu (2017), "Reinforcement Learning for Learning Rate
Control": an actor-critic LR controller vs hand-designed SGD schedules.

Runs the `lrmeta rl-train` job with ``configs/rl_fmnist.py:xu2017[_small]``
(the paper's set-up as far as our environment supports it: an actor that
outputs a real-valued LR action at each decision, a critic ``Q(s, a)``
trained by temporal differences, the actor following the critic's action
gradient, reward from the decrease of the training loss) on the
Fashion-MNIST small CNN, against constant / step / cosine SGD schedules with
tuned rates on the same budget, and writes ``table.md`` next to the job's
figures. The paper's own setting and claims are printed alongside.

Differences from the paper (by design, see ``lrmeta/rl/actor_critic.py``):
the action is a log-factor on the rate (not the rate itself), the actor is
an MLP on normalised training-dynamics features, and the paper's
different-minibatches trick for actor and critic is not used.

  python scripts/reproduce_xu2017.py --small   # 2 CPU cores, 25 min
  python scripts/reproduce_xu2017.py           # full config, meant for a GPU
  python scripts/reproduce_xu2017.py --small --table-only

The last line printed is the job's JSON summary.
"""

from __future__ import annotations

import pathlib

from lrmeta.experiments import paper_tables, rl_loop

CONFIG = pathlib.Path(__file__).parents[1] / "configs" / "rl_fmnist.py"

PAPER_SETTING = (
    "paper, their setting: MNIST and CIFAR-10 with convolutional networks; "
    "an actor network outputs the learning rate at each step from the "
    "model's state, a critic network judges the decision; reward from the "
    "training loss; compared with SGD under hand-designed rate schedules and "
    "with adaptive optimizers (e.g. Adam, RMSprop, vSGD).")
PAPER_CLAIMS = (
    "paper, their setting (claims, qualitative): the actor-critic controller "
    "gives better convergence of SGD (lower loss, higher accuracy) than the "
    "human-designed competitors. Its numbers are not printed here: only "
    "the paper's abstract was in the material this project could read (a "
    "literature search on 2026-11-23 found no copy of its results; see "
    "arXiv:1705.11159, Sec. 4).")


def table(cfg, summary: dict) -> str:
  lines = [
      "# Xu, Qin et al. 2017: actor-critic LR controller vs SGD schedules",
      "",
      f"**Ours (smaller than the paper)**: {cfg.task.dataset} / "
      f"{cfg.task.model} (widths {tuple(cfg.model.features)}/"
      f"{cfg.model.hidden}), {summary['steps']} steps of batch "
      f"{cfg.task.batch_size} on {cfg.task.max_train or 'all'} training "
      f"images; actor-critic trained for {summary['iterations']} batches of "
      f"{cfg.actor_critic.num_envs} episodes (reward: {cfg.env.reward}"
      f"{rl_loop.task_family_note(cfg, 'batches')}); "
      f"base rates tuned on validation over {list(cfg.eval.lr_grid)}; test "
      f"accuracy, mean ± std over seeds {list(cfg.eval.test_seeds)}.", "",
      "| method | tuned base lr | test acc |", "|---|---|---|"]
  for m, acc in summary["test_acc"].items():
    name = "actor-critic policy" if m == "rl_policy" else m
    lines.append(f"| {name} | {summary['tuned_lr'][m]} | {acc} |")
  lines += ["", f"Policy minus best schedule ({summary['best_schedule']}): "
            f"{100 * summary['rl_minus_best_schedule']:+.2f} points.", ""]
  lines += paper_tables.transfer_table(cfg, summary, "actor-critic policy")
  figures = "task_curves.png, training.png" + (
      ", transfer_<name>_curves.png" if cfg.transfer.enabled else "")
  lines += [PAPER_SETTING, "", PAPER_CLAIMS, "", f"Figures: {figures}.", ""]
  return "\n".join(lines)


def main(argv=None):
  paper_tables.table_script(__doc__.splitlines()[0], str(CONFIG),
                      ("xu2017", "xu2017_small"), table, argv)


if __name__ == "__main__":
  main()
