"""`lrmeta rl-train` on the task family: one actor trained three ways, the
held-out protocol, frozen transfer.

1. Training (config ``configs/rl_family.py``): the actor (``env.hidden``,
   ``env.features``; scale-free by default) over the same training shapes of
   :class:`lrmeta.tasks.family.Family` (never a held-out shape), by each of
   ``cfg.algos``:

   * ``"ppo"``: PPO over vmapped family environments, discrete rate factors
     (lrmeta's environment, not the authors' of Xu, Dai, Kemp, Metz 2019);
   * ``"actor_critic"``: lrmeta's actor-critic modelled on Xu, Qin et al.
     (2017), a continuous log-factor;
   * ``"es"``: whole-run antithetic ES on the actor's weights
     (:class:`lrmeta.meta.family_es.FamilyES`, the meta-optimizer every
     learned controller shares), as many training runs as PPO's episodes;
     ``meta.action`` picks its head: ``"discrete"`` (PPO's factors, greedy
     in deployment) or ``"continuous"`` (the actor-critic's mean
     log-factor, a deployed rate that moves smoothly with the weights).

   Each trainer starts from the same initial actor of its head (the
   discrete one favouring "keep the rate").
2. Held-out protocol (:func:`lrmeta.experiments.family_job.judge`): every
   policy with its base rate tuned per instance and once for the family,
   against the six tuned baselines, paired seeds, 95 % intervals; each
   policy's verdict is against the best of them.
3. Transfer: the frozen policies on the small CNN on full-size Fashion-MNIST
   and ResNet-8 on the CIFAR-10 JPEG copy (``cfg.transfer.cnn`` /
   ``cfg.transfer.cifar``), base rates tuned on validation like cosine's,
   paired test seeds.
4. The observation ranges the headline policy saw in training, on held-out
   instances and at each transfer (``features.md``): a policy reads a new
   problem in its training range or extrapolates.

The results folder holds ``config.json``, ``summary.md``, ``summary.json``,
``heldout.md``, ``heldout_results.json`` (every method's test accuracy
per held-out (shape, seed), both tunings), ``features.md``, ``training_<algo>.png``,
``meta_training.png`` (ES), ``rates.png``, ``<algo>/`` (checkpoints,
``training.jsonl`` / ``meta_metrics.jsonl``, ``controller/`` for ``lrmeta
evaluate``) and ``timings.json``. A rerun resumes each trainer.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

from lrmeta.experiments import family_job
from lrmeta.experiments import results as res
from lrmeta.experiments.config import ConfigError
from lrmeta.experiments.family_loop import build_family
# The trainers; their names stay importable from here.
from lrmeta.experiments.rl_family_loop import (  # pylint: disable=unused-import
    ALGOS, LABELS, TRANSFERS, env_config, episodes, policy_config,
    saved_config, shapes_of, train)
from lrmeta.experiments.rl_report import (late_cut_summary,
                                          observations_section,
                                          paired_versus_baselines,
                                          train_note, trainer_summary)


# -- transfer -------------------------------------------------------------------


def run_transfer(cfg, section, trained: dict, log) -> dict:
  """The tuned baselines and every policy (base rate tuned) on a transfer
  task; :func:`family_job.transfer_stage`'s result with ``vs_cosine`` and
  ``vs_best`` keyed by trainer."""
  stage = family_job.transfer_stage(section, {
      LABELS[a]: (lambda steps, tr=tr: family_job.controller_at(
          tr["config"], tr["actor"], steps, tune=True))
      for a, tr in trained.items()}, momentum=cfg.test.momentum, log=log)
  for key in ("vs_cosine", "vs_best"):
    stage[key] = {a: stage[key][LABELS[a]] for a in trained}
  return stage


# -- the job ----------------------------------------------------------------------


def run(cfg, *, quiet: bool = False) -> dict:
  """Trains, judges and transfers; writes the results folder; prints (last)
  and returns the summary."""
  with res.results_folder(cfg.output_dir, keep=tuple(cfg.algos)) as out:
    summary = _run(cfg, out, quiet)
  print(json.dumps(summary, default=float))
  return summary


def _log(s: str) -> None:
  print(s, flush=True)


def _run(cfg, out: pathlib.Path, quiet: bool) -> dict:
  t_start = time.perf_counter()
  res.write_config(out, cfg)
  algos = tuple(cfg.algos)
  if not algos or any(a not in ALGOS for a in algos):
    raise ConfigError(f"config key 'algos' must hold some of {ALGOS}, got "
                      f"{algos}")
  family = build_family(cfg)
  shapes = shapes_of(cfg, family)
  trained, seconds = _train_all(cfg, algos, family, shapes, out, quiet)
  summary: dict[str, Any] = {
      "results_dir": str(cfg.output_dir), "headline": algos[0],
      "episodes": episodes(cfg, algos[0]),
      "train_shapes": [s.name for s in shapes],
      "trainers": {a: trainer_summary(a, trained[a]) for a in algos}}
  sections = [(None, train_note(cfg, trained, shapes), "")]
  if cfg.test.enabled:
    sections.append(_heldout(cfg, trained, out, summary, seconds, quiet))
  transfers = {}
  if cfg.transfer.enabled:
    for i, name in enumerate(cfg.transfer.tasks):
      transfers[name] = _transfer(cfg, name, trained, summary, seconds,
                                  quiet)
      sections.append(_transfer_section(cfg, i, name, transfers[name],
                                        algos))
  sections.append(observations_section(cfg, trained[algos[0]], family, shapes,
                                transfers, out, algos[0]))
  seconds["total"] = time.perf_counter() - t_start
  summary["seconds"] = seconds
  text = res.write_summary(out, cfg.name, sections)
  res.write_timings(out, seconds)
  (out / "summary.json").write_text(json.dumps(summary, indent=1,
                                               default=float))
  _log("\n" + text + f"\nresults written to {cfg.output_dir}/")
  return summary


def _train_all(cfg, algos, family, shapes, out, quiet):
  """Stage 1: every trainer of ``algos``; ``(trained, seconds)``."""
  _log(f"[1/4] training the actor over {len(shapes)} family shapes "
       f"({', '.join(s.name for s in shapes)}) by {', '.join(algos)}; "
       f"{cfg.env.decisions} decisions per episode")
  trained, seconds = {}, {}
  for algo in algos:
    _log(f"  {LABELS[algo]}: {episodes(cfg, algo)} episodes")
    trained[algo] = train(cfg, algo, family, shapes, out, quiet)
    seconds[f"train_{algo}"] = trained[algo]["seconds"]
    hist = trained[algo]["history"]
    if algo == "es":
      res.plot_family_meta(out / "meta_training.png", {"ES": hist},
                           f"{cfg.name}: actor by whole-run ES")
    else:
      res.plot_rl_training(out / f"training_{algo}.png", hist,
                           f"{cfg.name}: {LABELS[algo]}")
  return trained, seconds


def _heldout(cfg, trained, out, summary, seconds, quiet):
  """Stage 2: the held-out protocol; fills ``summary``; returns the
  section."""
  algos = tuple(trained)
  _log("[2/4] held-out protocol")
  t0 = time.perf_counter()
  results = family_job.judge(cfg, {
      LABELS[a]: family_job.tuned_controller_method(tr["config"],
                                                    tr["actor"])
      for a, tr in trained.items()}, quiet)
  seconds["heldout"] = time.perf_counter() - t0
  for a in algos:
    summary["trainers"][a].update(family_job.versus_cosine(results,
                                                           LABELS[a]))
    summary["trainers"][a].update(family_job.versus_baselines(results,
                                                              LABELS[a]))
  summary.update(family_job.versus_cosine(results, LABELS[algos[0]]))
  summary.update(family_job.versus_baselines(results, LABELS[algos[0]]))
  others = [(LABELS[a], how) for a in algos
            for how in ("family", "instance")] + family_job.baseline_rows()
  table = res.write_family_table(out / "heldout.md", results,
                                 ("cosine", "family"), others)
  res.plot_family_rates(out / "rates.png", family_job.rate_curves(
      results, (LABELS[algos[0]], "cosine")),
      f"{LABELS[algos[0]]} vs family-tuned cosine on held-out instances")
  summary["heldout_family_lr"] = results[LABELS[algos[0]]].family_lr
  summary["heldout_paired"] = paired_versus_baselines(
      results, LABELS[algos[0]], out, _log)
  for name in [LABELS[a] for a in algos] + ["cosine", "wsd"]:
    if name in results:
      cut = late_cut_summary(results[name])
      summary.setdefault("late_cut", {})[name] = cut
      _log(f"  {name}: last-10 % rate / rate at 70 %: mean "
           f"{cut['mean_ratio']:.3f}, below 1/3 on {cut['runs_below_third']}"
           f" of {cut['runs']} held-out runs")
  return ("Held-out instances", family_job.test_note(cfg, results), table)


def _transfer(cfg, name, trained, summary, seconds, quiet) -> dict:
  """Stage 3 on transfer section ``name``; fills ``summary``."""
  algos = tuple(trained)
  t = cfg.transfer[name]
  _log(f"[3/4] transfer to {t.dataset} / {t.model}: {t.steps} steps of "
       f"batch {t.batch_size}, policies frozen, rates tuned over "
       f"{tuple(t.lr_grid)}, test seeds {tuple(t.test_seeds)}")
  t0 = time.perf_counter()
  stage = run_transfer(cfg, t, trained, (lambda s: None) if quiet else _log)
  seconds[f"transfer_{name}"] = time.perf_counter() - t0
  for key in ("vs_cosine", "vs_best"):
    summary[f"transfer_{name}_{key}"] = stage[key][algos[0]]
    for a in algos:
      summary["trainers"][a][f"transfer_{name}_{key}"] = stage[key][a]
  r = stage["results"]
  summary[f"transfer_{name}"] = {
      "task": stage["task"].name, "steps": t.steps,
      "test_acc": {n: res.mean_std(x.hist.final("test_acc"))
                   for n, x in r.items()},
      "tuned_lr": {n: x.lr for n, x in r.items()}}
  return stage


def _transfer_section(cfg, i, name, stage, algos):
  labelled = {key: {LABELS[a]: d for a, d in stage[key].items()}
              for key in ("vs_cosine", "vs_best")}
  return (f"Transfer {i + 1}: {stage['task'].name}",
          family_job.transfer_note(cfg.transfer[name],
                                   {**stage, **labelled},
                                   [LABELS[a] for a in algos]),
          res.markdown_table(
              ["method", "tuned base lr", "test acc", "test loss",
               "val acc"],
              res.result_rows(stage["results"],
                              ("test_acc", "test_loss", "val_acc"))))


__all__ = ["ALGOS", "LABELS", "TRANSFERS", "env_config",
           "episodes", "policy_config", "run", "run_transfer",
           "saved_config", "shapes_of", "train"]
