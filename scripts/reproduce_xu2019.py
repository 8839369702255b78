"""Xu, Dai, Kemp, Metz (2019), "Learning an Adaptive Learning Rate Schedule":
a PPO-trained LR controller vs tuned hand-designed schedules on
Fashion-MNIST, and transferred unchanged to CIFAR-10 (JPEG copy).

Runs the `lrmeta rl-train` job with ``configs/rl_fmnist.py`` (the paper's
set-up: features of training/validation loss, prediction variance and
output-layer weights; the LR multiplied by one of a few factors every N
steps; validation-loss reward; PPO) and writes ``table.md`` in the shape of
the paper's table (controller vs baselines on the same budget, mean ± std
over seeds, then transfer) next to the job's figures (``task_curves.png``,
``transfer_curves.png``, ``training.png``). The paper's own setting and
claims are printed alongside; our runs are much smaller and the table says
how.

  python scripts/reproduce_xu2019.py --small   # 2 CPU cores, 26 min
  python scripts/reproduce_xu2019.py           # full config, meant for a GPU
  python scripts/reproduce_xu2019.py --small --table-only   # from results/

The last line printed is the job's JSON summary.
"""

from __future__ import annotations

import pathlib

from lrmeta.experiments import paper_tables, rl_loop

CONFIG = pathlib.Path(__file__).parents[1] / "configs" / "rl_fmnist.py"

PAPER_SETTING = (
    "paper, their setting: controller trained with PPO on past training runs "
    "of CNNs on Fashion-MNIST and of ResNets on CIFAR-10; observations are "
    "training and validation loss, the variance of the predictions and of "
    "their change, and mean/variance of the output-layer weights; the action "
    "multiplies the LR by one of a few factors every few steps; the reward "
    "comes from the validation loss; baselines are hand-designed schedules; "
    "the controller is transferred to other datasets and architectures.")
PAPER_CLAIMS = (
    "paper, their setting (claims): the learned controller reaches better "
    "test results than the hand-designed schedules, and a controller trained "
    "on one dataset transfers to new problems.")
# The paper's own numbers (NeurIPS 2019 Meta-Learning workshop version,
# Tables 1 and 2): test accuracy as a fraction, mean (std) over 10 runs;
# baseline = grid-tuned step decay; trainee batch 1k, 1k steps (20 epochs of
# Fashion-MNIST, 25 of CIFAR-10); PPO for 1k episodes; * = significant.
PAPER_NUMBERS = """\
Paper's numbers, their setting (not ours): Xu, Dai, Kemp, Metz 2019, Tables 1-2
(NeurIPS 2019 Meta-Learning workshop version; test accuracy, mean (std) over
10 runs; baseline = grid-tuned step decay; * = significant, t-test p < 0.05;
trainee batch 1k, 1k steps = 20 epochs of Fashion-MNIST, 25 of CIFAR-10):

| table | dataset / model | baseline | learned controller |
|---|---|---|---|
| 1 | Fashion-MNIST / CNN | 0.9102 (0.0019) | 0.9201* (0.0022) |
| 1 | Fashion-MNIST / ResNet | 0.9188 (0.0029) | 0.9192 (0.0028) |
| 1 | CIFAR-10 / CNN | 0.6759 (0.0048) | 0.6787 (0.0041) |
| 1 | CIFAR-10 / ResNet | 0.7395 (0.0206) | 0.8181* (0.0069) |
| 2 | CIFAR-10 -> Fashion-MNIST / CNN (transfer) | 0.9021 (0.0013) | 0.9074* (0.0030) |
| 2 | CIFAR-10 -> Fashion-MNIST / ResNet (transfer) | 0.9166 (0.0025) | 0.9212* (0.0034) |
"""


def table(cfg, summary: dict) -> str:
  lines = [
      "# Xu, Dai, Kemp, Metz 2019: RL LR controller vs tuned schedules", "",
      f"**Ours (smaller than the paper)**: {cfg.task.dataset} / "
      f"{cfg.task.model} (widths {tuple(cfg.model.features)}/"
      f"{cfg.model.hidden}), {summary['steps']} steps of batch "
      f"{cfg.task.batch_size} on {cfg.task.max_train or 'all'} training "
      f"images; policy trained by {summary['algo']} for "
      f"{summary['iterations']} iterations x {cfg.ppo.num_envs} episodes "
      f"(training seed {cfg.seed}"
      f"{rl_loop.task_family_note(cfg, 'iterations')}); every method's base "
      f"rate tuned on validation over {list(cfg.eval.lr_grid)}; test "
      f"accuracy, mean ± std over seeds {list(cfg.eval.test_seeds)} (not "
      "used in training or tuning).", "",
      "| method | tuned base lr | test acc |", "|---|---|---|"]
  for m, acc in summary["test_acc"].items():
    lines.append(f"| {m} | {summary['tuned_lr'][m]} | {acc} |")
  lines += ["", f"RL policy minus best schedule ({summary['best_schedule']}):"
            f" {100 * summary['rl_minus_best_schedule']:+.2f} points.", ""]
  lines += paper_tables.transfer_table(cfg, summary)
  lines += [PAPER_SETTING, "", PAPER_CLAIMS, "", PAPER_NUMBERS,
            "Figures: task_curves.png, transfer_curves.png, training.png.",
            ""]
  return "\n".join(lines)


def main(argv=None):
  paper_tables.table_script(__doc__.splitlines()[0], str(CONFIG), ("", "small"),
                      table, argv)


if __name__ == "__main__":
  main()
