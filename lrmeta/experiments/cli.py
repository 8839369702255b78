"""The ``lrmeta`` command line: ``lrmeta <command> --config FILE[:variant]``.

Overrides follow the config: ``--config.train.epochs=2``. The config is
checked whole (:func:`lrmeta.experiments.validate.validate`) before any data
loads; a mistake in it, a missing file or a dataset with no usable source
prints one ``error: ...`` line and exits with status 2 (``--debug`` or
``LRMETA_DEBUG=1`` shows the traceback instead). Otherwise the first lines
printed name where each dataset is read from (``data: ...``; also
``data.json`` in the results folder).
"""

from __future__ import annotations

import argparse
import ast
import os
import pathlib
import re
import sys
import textwrap

# command -> (job module, one-line help, the config file it ships with,
# an example command line).
COMMANDS = {
    "train": ("lrmeta.experiments.jobs.train",
              "train a task under one or more LR controllers",
              "configs/fashion_mnist.py",
              "lrmeta train --config configs/fashion_mnist.py:small "
              "--config.methods=\"('cosine', 'hd_sgd(hyper_lr=1e-3)')\""),
    "select": ("lrmeta.experiments.jobs.select",
               "LRBench: select, compose and verify LR policies",
               "configs/lrbench_fashion_mnist.py",
               "lrmeta select --config configs/lrbench_fashion_mnist.py:small"
               " --config.selection.budget=200"),
    "meta-train": ("lrmeta.experiments.jobs.meta_train",
                   "meta-train a learned controller on one task or the "
                   "task family (config key kind), then judge and transfer "
                   "it",
                   "configs/mlrsnet_fmnist.py",
                   "lrmeta meta-train --config configs/mlrsnet_fmnist.py:debug"
                   " --config.meta.meta_steps=4"),
    "rl-train": ("lrmeta.experiments.jobs.rl_train",
                 "train an RL learning-rate policy (PPO / actor-critic), "
                 "then test and transfer it",
                 "configs/rl_fmnist.py",
                 "lrmeta rl-train --config configs/rl_fmnist.py:debug "
                 "--config.algo=actor_critic"),
    "evaluate": ("lrmeta.experiments.jobs.evaluate",
                 "apply a saved controller, frozen, to a task against "
                 "tuned schedules",
                 "configs/evaluate_transfer.py",
                 "lrmeta evaluate --config configs/evaluate_transfer.py:small "
                 "--config.controller=results/mlrsnet_fmnist/checkpoints/"
                 "controller"),
}

# Raised while loading, overriding or validating a config: reported as one
# line. (ConfigError and DataNotFoundError are subclasses of these.)
_USER_ERRORS = (KeyError, ValueError, FileNotFoundError, TypeError,
                AttributeError, SyntaxError)

_ENVIRONMENT = """\
environment variables:
  LRMETA_DATA_DIR      folder of the Fashion-MNIST IDX files (default: the
                       Debian package's /usr/share/datasets/fashion-mnist);
                       config key task.data_dir takes precedence. A folder
                       set here that lacks the files is an error.
  LRMETA_CIFAR10_JPEG  the CIFAR-10 JPEG archive or its folder (default:
                       ../shared/data/cifar10-jpeg beside the repository,
                       then TFDS cifar10 if prepared in the TFDS data dir)
  TFDS_DATA_DIR        TFDS's data dir (default ~/tensorflow_datasets)
  LRMETA_TFDS_DOWNLOAD=1  download TFDS cifar10 when no other source has it
                       (needs a network and pip install -e '.[tfds]')
  LRMETA_CACHE_DIR     where decoded CIFAR-10 JPEG arrays are cached
                       (default ~/.cache/lrmeta)
  LRMETA_DEBUG=1       show the Python traceback of an error (as --debug)
  JAX_PLATFORMS        e.g. cpu, to keep JAX off an accelerator"""

_OVERRIDES = """\
configs and overrides:
  --config FILE[:variant]  a Python file whose get_config(variant) returns
                           the settings; a suffix such as ':small' picks a
                           variant (none: the full-size default).
  --config.KEY=VALUE       sets one key (nested keys joined by dots), parsed
                           as the type of the value it replaces, e.g.
                             --config.train.epochs=0.5
                             --config.optimizer.name=adam
                             --config.seeds="(0, 1)"   (quote tuples)
                           '--config.KEY VALUE' works too. Unknown keys and
                           bad values are errors naming the key; the whole
                           config is checked before any data loads."""

_RESULTS = """\
results:
  written to the config's output_dir (--config.output_dir=results/try1).
  A run writes into a staging folder beside it, <output_dir>.partial-<pid>,
  and replaces output_dir only when it finishes: a failed or interrupted
  run leaves the previous results untouched (checkpoints it made are kept
  in the staging folder and resumed by the next run)."""


def _repo_root() -> pathlib.Path:
  return pathlib.Path(__file__).resolve().parents[2]


def _find_config(rel: str) -> pathlib.Path | None:
  for base in (pathlib.Path.cwd(), _repo_root()):
    if (base / rel).is_file():
      return base / rel
  return None


def config_summary(path: pathlib.Path) -> tuple[str, tuple[str, ...]]:
  """``(docstring, variants)`` of a config file, read without running it:
  the variants from its ``VARIANTS`` tuple, else from the names quoted in
  its ``unknown variant`` error message."""
  tree = ast.parse(path.read_text())
  doc = ast.get_docstring(tree) or ""
  variants = None
  for node in ast.walk(tree):
    if (isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "VARIANTS" for t in node.targets)):
      try:
        variants = tuple(ast.literal_eval(node.value))
      except ValueError:
        pass
  if variants is None:
    for node in ast.walk(tree):
      if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
          "use " in node.value and "'" in node.value):
        variants = tuple(re.findall(r"'([^']*)'", node.value))
        break
  return doc, variants or ("",)


def _epilog(command: str) -> str:
  _, _, rel, example = COMMANDS[command]
  path = _find_config(rel)
  parts = [f"example:\n  {example}"]
  if path is not None:
    doc, variants = config_summary(path)
    names = ", ".join(repr(v) if v else "'' (the default)" for v in variants)
    first = textwrap.fill(" ".join(doc.split("\n\n")[0].split()), 76,
                          initial_indent="  ", subsequent_indent="  ")
    usage = "\n".join("  " + line.strip() for line in doc.splitlines()
                      if line.strip().startswith("lrmeta "))
    parts.append(f"config file: {rel}\n{first}\n  variants: {names}"
                 + (f"\n{usage}" if usage else ""))
  else:
    parts.append(f"config file: {rel} (in the repository's configs/)")
  parts.append(_OVERRIDES)
  parts.append(_RESULTS)
  parts.append(_ENVIRONMENT)
  return "\n\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="lrmeta", description="Learned learning-rate controllers.",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="Run `lrmeta COMMAND --help` for a command's configs, variants "
      "and an example.\n\n" + _ENVIRONMENT)
  sub = parser.add_subparsers(dest="command", required=True,
                              metavar="COMMAND")
  for name, (_, help_text, rel, _) in COMMANDS.items():
    p = sub.add_parser(
        name, help=help_text, description=help_text[0].upper() + help_text[1:]
        + ".", epilog=_epilog(name),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, metavar="FILE[:variant]",
                   help=f"config file and variant, e.g. {rel}:small")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true",
                   help="show the Python traceback of an error")
  return parser


def _overrides(rest: list[str], parser) -> list[str]:
  """``--config.KEY=VALUE`` items; ``--config.KEY VALUE`` is joined."""
  out, i = [], 0
  while i < len(rest):
    item = rest[i]
    if not item.startswith("--config."):
      parser.error(f"unrecognised argument: {item} (overrides read "
                   f"--config.KEY=VALUE)")
    if "=" not in item:
      if i + 1 >= len(rest):
        parser.error(f"{item} needs a value: {item}=VALUE")
      item = f"{item}={rest[i + 1]}"
      i += 1
    out.append(item)
    i += 1
  return out


def _one_line(e: BaseException) -> str:
  msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
  msg = " ".join(msg.split())
  return msg or type(e).__name__


def main(argv: list[str] | None = None) -> int:
  """Runs one command; returns the exit status (2 for a configuration,
  data or spec error, reported as one ``error: ...`` line on stderr)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = build_parser()
  args, rest = parser.parse_known_args(argv)
  overrides = _overrides(rest, parser)
  debug = args.debug or os.environ.get("LRMETA_DEBUG", "") not in ("", "0")
  # Imported here so that --help and config-file errors need no JAX.
  # pylint: disable=import-outside-toplevel
  import importlib
  from lrmeta.experiments.config import (ConfigError, apply_overrides,
                                         load_config)
  try:
    cfg = apply_overrides(load_config(args.config), overrides)
    from lrmeta.experiments.validate import validate
    sources = validate(cfg, args.command)
  except _USER_ERRORS as e:
    if debug:
      raise
    print(f"error: {_one_line(e)}", file=sys.stderr)
    return 2
  for name, src in sources.items():
    print(f"data: {name}: {src.describe()}", flush=True)
  from lrmeta.data import DataNotFoundError
  module = importlib.import_module(COMMANDS[args.command][0])
  try:
    module.run(cfg, quiet=args.quiet)
  except (ConfigError, DataNotFoundError) as e:
    if debug:
      raise
    print(f"error: {_one_line(e)}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
