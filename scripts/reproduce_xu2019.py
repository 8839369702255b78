"""Xu, Dai, Kemp, Metz (2019), "Learning an Adaptive Learning Rate Schedule":
a PPO-trained LR controller vs tuned hand-designed schedules on
Fashion-MNIST, and transferred unchanged to CIFAR-10 (JPEG copy).

Runs the `lrmeta rl-train` job with ``configs/rl_fmnist.py`` in lrmeta's
environment (``env.mode = "lrmeta"``, not the authors': normalised features
modelled on theirs, the SGD rate multiplied by one of a few factors every N
steps, lrmeta's validation-loss improvement reward, PPO) and writes ``table.md`` in the shape of
the paper's table (controller vs baselines on the same budget, mean ± std
over seeds, then transfer) next to the job's figures (``task_curves.png``,
``transfer_<name>_curves.png``, ``training.png``). The paper's own setting and
claims are printed alongside; our runs are much smaller and the table says
how.

  python scripts/reproduce_xu2019.py --small   # 2 CPU cores, 26 min

The authors' own environment (their released code: Adam, a multiplier in
[0.965, 1.035] every step, their 9 features and reward) is ``lrmeta rl-train
--config configs/rl_fmnist.py:xu2019_small``.
  python scripts/reproduce_xu2019.py           # full config, meant for a GPU
  python scripts/reproduce_xu2019.py --small --table-only   # from results/
  python scripts/reproduce_xu2019.py --family --small  # over the task family

``--family`` runs ``configs/rl_family.py`` instead: the policy (scale-free
features) trained over the task family by PPO, the actor-critic and
whole-run ES, judged on held-out family instances against cosine tuned per
instance and once per family, then transferred frozen to the small CNN on
Fashion-MNIST and ResNet-8 on the CIFAR-10 JPEG copy.

The last line printed is the job's JSON summary.
"""

from __future__ import annotations

import pathlib

from lrmeta.data import DataNotFoundError, data_source
from lrmeta.experiments import paper_tables, rl_loop

CONFIG = pathlib.Path(__file__).parents[1] / "configs" / "rl_fmnist.py"
FAMILY_CONFIG = pathlib.Path(__file__).parents[1] / "configs" / "rl_family.py"

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
Paper's numbers, their setting (not ours; unverified: no copy of the paper
was at hand to check this transcription): Xu, Dai, Kemp, Metz 2019, Tables 1-2
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
            "Figures: task_curves.png, transfer_<name>_curves.png, training.png.",
            ""]
  return "\n".join(lines)


def _interval(d: dict | None) -> str:
  if d is None:
    return "not run"
  verdict = ("beats" if d["ci_low"] > 0 else
             "worse" if d["ci_high"] < 0 else "tie")
  return (f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] "
          f"({verdict})")


def family_table(cfg, summary: dict) -> str:
  """The task-family run as one table: each trainer's policy against tuned
  cosine on held-out instances and after transfer."""
  labels = {"ppo": "PPO (Xu et al. 2019, discrete factors)",
            "actor_critic": "actor-critic (Xu et al. 2017, log-factor)",
            "es": "whole-run ES on the same actor"}
  cols = ("heldout_vs_family_cosine", "heldout_vs_instance_cosine",
          "transfer_cnn_vs_cosine", "transfer_cifar_vs_cosine")
  try:
    cifar = data_source(cfg.transfer.cifar.dataset).label
  except DataNotFoundError:  # the run had no CIFAR-10 transfer
    cifar = "CIFAR-10"
  lines = [
      "# Xu et al. 2019 over the task family: RL LR policies vs tuned "
      "cosine", "",
      f"Policy trained over {len(summary['train_shapes'])} training shapes "
      f"of the task family ({', '.join(cfg.family.sources)}; budgets "
      f"{tuple(cfg.family.num_steps)}), {cfg.env.features} features, "
      f"{cfg.env.decisions} decisions per run. Test accuracy, paired "
      "difference in points with its 95 % interval. Held-out: "
      f"{cfg.test.num_seeds} seeds on each held-out shape, every method's "
      "base rate tuned per family or per instance. Transfer: small CNN on "
      f"Fashion-MNIST ({cfg.transfer.cnn.steps} steps of batch "
      f"{cfg.transfer.cnn.batch_size}, {len(cfg.transfer.cnn.test_seeds)} "
      f"seeds) and {cfg.transfer.cifar.model} on {cifar} "
      f"({cfg.transfer.cifar.steps} steps of batch "
      f"{cfg.transfer.cifar.batch_size}, "
      f"{len(cfg.transfer.cifar.test_seeds)} seeds), rates tuned on "
      "validation.", "",
      "| trainer | episodes | held-out vs family-tuned cosine | held-out vs "
      f"per-instance cosine | CNN transfer vs cosine | {cifar} "
      "transfer vs cosine |", "|---|---|---|---|---|---|"]
  for algo, t in summary["trainers"].items():
    lines.append(f"| {labels.get(algo, algo)} | {t['episodes']} | "
                 + " | ".join(_interval(t.get(c)) for c in cols) + " |")
  lines += ["", "Per-shape intervals: heldout.md; observation ranges: "
            "features.md; figures: training_*.png, meta_training.png, "
            "rates.png.", "", PAPER_SETTING, "", PAPER_CLAIMS, ""]
  return "\n".join(lines)


def main(argv=None):
  paper_tables.table_script(__doc__.splitlines()[0], str(CONFIG), ("", "small"),
                            table, argv,
                            family=(str(FAMILY_CONFIG), family_table))


if __name__ == "__main__":
  main()
