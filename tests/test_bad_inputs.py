"""Bad command lines: one `error:` line naming the culprit, exit status 2,
before any data loads, and an earlier results folder left as it was."""

import pathlib

import pytest

from lrmeta.cli import main

TRAIN = "configs/fashion_mnist.py:small"
EVAL = "configs/evaluate_transfer.py:tiny"
META = "configs/mlrsnet_fmnist.py:debug"
RL = "configs/rl_fmnist.py:debug"
SELECT = "configs/lrbench_fashion_mnist.py:small"


@pytest.fixture(autouse=True)
def _no_data_reads(monkeypatch):
  """Every case must fail before a dataset is read."""
  from lrmeta.data import cifar10, fashion_mnist

  def fail(*args, **kwargs):
    raise AssertionError("data were read before the config was rejected")
  monkeypatch.setattr(fashion_mnist, "read_idx", fail)
  monkeypatch.setattr(cifar10, "load_arrays", fail)
  monkeypatch.delenv("LRMETA_DATA_DIR", raising=False)
  monkeypatch.delenv("LRMETA_DEBUG", raising=False)


@pytest.fixture
def old_results(tmp_path):
  """A results folder from an earlier run, and a check that it is intact."""
  out = tmp_path / "results" / "old_run"
  (out / "checkpoints").mkdir(parents=True)
  files = {"config.json": '{"learning_rate": 0.05}',
           "summary.md": "# earlier run\n", "checkpoints/marker": "keep"}
  for name, text in files.items():
    (out / name).write_text(text)

  def intact():
    found = {str(p.relative_to(out)): p.read_text()
             for p in out.rglob("*") if p.is_file()}
    assert found == files
    assert [p.name for p in out.parent.iterdir()] == ["old_run"]
  return out, intact


@pytest.fixture
def truncated_ckpt(tmp_path) -> str:
  """A controller folder whose save was cut short: one partial file."""
  d = tmp_path / "ckpt_truncated"
  d.mkdir()
  (d / "_CHECKPOINT_METADATA").write_text('{"item_handlers": {"th')
  return str(d)


def _run(capsys, config, *overrides, out: pathlib.Path) -> str:
  code = main(["train" if config == TRAIN else _command(config), "--config",
               config, "--quiet", f"--config.output_dir={out}", *overrides])
  captured = capsys.readouterr()
  lines = captured.err.strip().splitlines()
  assert code == 2, (code, captured.err)
  assert len(lines) == 1, lines
  assert lines[0].startswith("error: "), lines
  return lines[0]


def _command(config: str) -> str:
  return {EVAL: "evaluate", META: "meta-train", RL: "rl-train",
          SELECT: "select"}.get(config, "train")


CASES = [
    # (id, config, overrides, words the error line must contain)
    ("unknown_key", TRAIN, ["--config.train.epoch=2"],
     ["'train.epoch'", "'train.epochs'"]),
    ("misspelt_top_key", TRAIN, ["--config.learning_rat=0.1"],
     ["'learning_rat'", "'learning_rate'"]),
    ("unknown_block", TRAIN, ["--config.trian.epochs=2"], ["'trian.epochs'"]),
    ("block_as_value", TRAIN, ["--config.train=3"], ["'train'"]),
    ("word_for_int", TRAIN, ["--config.train.eval_every=ten"],
     ["'train.eval_every'", "'ten'"]),
    ("float_for_int", TRAIN, ["--config.task.batch_size=3.5"],
     ["'task.batch_size'", "'3.5'"]),
    ("bad_bool", META, ["--config.transfer.enabled=maybe"],
     ["'transfer.enabled'", "'maybe'"]),
    ("malformed_tuple", TRAIN, ["--config.seeds=(1,"], ["'seeds'", "(1,"]),
    ("word_for_float", TRAIN, ["--config.learning_rate=fast"],
     ["'learning_rate'", "'fast'"]),
    ("strings_for_seeds", TRAIN, ["--config.seeds=('a',)"],
     ["seeds[0]", "'a'"]),
    ("negative_rate", TRAIN, ["--config.learning_rate=-1"],
     ["'learning_rate' must be > 0, got -1.0"]),
    ("zero_rate", TRAIN, ["--config.learning_rate=0"],
     ["'learning_rate' must be > 0, got 0.0"]),
    ("nan_rate", TRAIN, ["--config.learning_rate=nan"],
     ["'learning_rate'", "nan"]),
    ("inf_weight_decay", TRAIN, ["--config.optimizer.weight_decay=inf"],
     ["'optimizer.weight_decay'", "inf"]),
    ("negative_epochs", TRAIN, ["--config.train.epochs=-1"],
     ["'train.epochs' must be > 0, got -1.0"]),
    ("zero_batch_size", TRAIN, ["--config.task.batch_size=0"],
     ["'task.batch_size' must be >= 1, got 0"]),
    ("label_noise_above_one", TRAIN, ["--config.task.label_noise=1.5"],
     ["'task.label_noise' must be in [0, 1], got 1.5"]),
    ("momentum_one", TRAIN, ["--config.optimizer.momentum=1.0"],
     ["'optimizer.momentum' must be in [0, 1), got 1.0"]),
    ("negative_max_train", TRAIN, ["--config.task.max_train=-5"],
     ["'task.max_train' must be >= 0"]),
    ("unknown_optimizer", TRAIN, ["--config.optimizer.name=rmsprop"],
     ["'optimizer.name'", "'rmsprop'"]),
    ("unknown_dataset", TRAIN, ["--config.task.dataset=mnist"],
     ["'task.dataset'", "'mnist'"]),
    ("unknown_model", TRAIN, ["--config.task.model=vgg"],
     ["'task.model'", "'vgg'"]),
    ("empty_seeds", TRAIN, ["--config.seeds=()"], ["'seeds'", "()"]),
    ("negative_seed", TRAIN, ["--config.seeds=(0, -1)"], ["seeds[1]", "-1"]),
    ("empty_method", TRAIN, ["--config.methods=('',)"], ["'methods'", "''"]),
    ("bare_unknown_method", TRAIN, ["--config.methods=cosin"],
     ["'methods'", "'cosin'"]),
    ("no_methods", TRAIN, ["--config.methods=()"], ["'methods'", "()"]),
    ("malformed_method", TRAIN, ["--config.methods=('tri2(k0=',)"],
     ["'methods'", "'tri2(k0='"]),
    ("unknown_method", TRAIN, ["--config.methods=('cosine', 'cosin')"],
     ["'methods'", "'cosin'"]),
    ("unknown_policy", TRAIN, ["--config.methods=('tri9(k0=0.1)',)"],
     ["'methods'", "tri9"]),
    ("bad_controller_argument", TRAIN,
     ["--config.methods=('hd_sgd(no_such_arg=1)',)"],
     ["'methods'", "no_such_arg"]),
    ("missing_ckpt_method", TRAIN, ["--config.methods=('ckpt:/no/such/dir',)"],
     ["'methods'", "/no/such/dir"]),
    ("empty_lr_grid", EVAL, ["--config.transfer.task.lr_grid=()"],
     ["'transfer.task.lr_grid'", "()"]),
    ("negative_grid_entry", EVAL,
     ["--config.transfer.task.lr_grid=(0.1, -0.1)"],
     ["transfer.task.lr_grid[1]", "-0.1"]),
    ("unknown_baseline", EVAL, ["--config.transfer.task.baselines=('cosin',)"],
     ["transfer.task.baselines[0]", "'cosin'"]),
    ("unknown_transfer_section", EVAL, ["--config.transfer.tasks=('cnn',)"],
     ["'transfer.tasks'", "'cnn'"]),
    ("missing_kind", META, ["--config.kind=both"], ["'kind'", "'both'"]),
    ("empty_controller", EVAL, [], ["'controller'", "empty"]),
    ("missing_controller", EVAL, ["--config.controller=/no/such/ctl"],
     ["'controller'", "/no/such/ctl"]),
    ("bad_estimator", META, ["--config.meta.estimator=adjoint"],
     ["'meta.estimator'", "'adjoint'"]),
    ("window_not_dividing_horizon", META,
     ["--config.meta.estimator=truncated", "--config.meta.window=5"],
     ["'meta.horizon'", "'meta.window'"]),
    ("empty_test_grid", META, ["--config.test.lr_grid=()"],
     ["'test.lr_grid'"]),
    ("zero_es_sigma", META, ["--config.meta.es_sigma=0"],
     ["'meta.es_sigma' must be > 0"]),
    ("unknown_algo", RL, ["--config.algo=dqn"], ["'algo'", "'dqn'"]),
    ("episode_not_whole_decisions", RL, ["--config.env.total_steps=13"],
     ["'env.total_steps'", "'env.steps_per_action'"]),
    ("discount_above_one", RL, ["--config.ppo.gamma=1.5"],
     ["'ppo.gamma'", "1.5"]),
    ("noise_rate_one", RL, ["--config.env.train_label_noise=(1.0,)"],
     ["env.train_label_noise", "1.0"]),
    ("zero_budget", SELECT, ["--config.selection.budget=0"],
     ["'selection.budget' must be >= 1"]),
    ("stage_fractions_backwards", SELECT,
     ["--config.selection.stage_fractions=(0.6, 0.3)"],
     ["'selection.stage_fractions'", "increasing"]),
]


@pytest.mark.parametrize("config,overrides,words", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_value_is_one_error_line(config, overrides, words, old_results,
                                     capsys):
  out, intact = old_results
  line = _run(capsys, config, *overrides, out=out)
  for w in words:
    assert w in line, (w, line)
  intact()


def test_missing_config_file(old_results, capsys):
  out, intact = old_results
  line = _run(capsys, "configs/fashion_mnist_typo.py", out=out)
  assert "configs/fashion_mnist_typo.py" in line
  assert "configs/fashion_mnist.py" in line  # the near miss is suggested
  intact()


def test_unknown_variant(old_results, capsys):
  out, intact = old_results
  line = _run(capsys, "configs/fashion_mnist.py:huge", out=out)
  assert "'huge'" in line and "'small'" in line
  intact()


def test_unusable_data_dir_from_env(old_results, tmp_path, monkeypatch,
                                    capsys):
  out, intact = old_results
  empty = tmp_path / "empty"
  empty.mkdir()
  monkeypatch.setenv("LRMETA_DATA_DIR", str(empty))
  line = _run(capsys, TRAIN, out=out)
  assert "LRMETA_DATA_DIR" in line and str(empty) in line
  assert "data.data_dir" not in line and "data.source" not in line
  intact()


def test_unusable_data_dir_from_key(old_results, tmp_path, capsys):
  out, intact = old_results
  line = _run(capsys, TRAIN, f"--config.task.data_dir={tmp_path / 'nope'}",
              out=out)
  assert "task.data_dir" in line and str(tmp_path / "nope") in line
  intact()


def test_truncated_controller_for_evaluate(old_results, truncated_ckpt,
                                           capsys):
  out, intact = old_results
  line = _run(capsys, EVAL, f"--config.controller={truncated_ckpt}", out=out)
  assert "'controller'" in line and truncated_ckpt in line
  assert "truncated" in line
  intact()


def test_truncated_controller_as_train_method(old_results, truncated_ckpt,
                                             capsys):
  out, intact = old_results
  line = _run(capsys, TRAIN, f"--config.methods=('ckpt:{truncated_ckpt}',)",
              out=out)
  assert "'methods'" in line and truncated_ckpt in line
  intact()


def test_a_complete_saved_controller_passes(tmp_path):
  """The controller check accepts what save_controller wrote (so the
  truncated-folder errors above come from the truncation)."""
  import jax.numpy as jnp
  from lrmeta.experiments.validate import check_controller_dir
  from lrmeta.meta import save_controller
  d = str(tmp_path / "ctl")
  save_controller(d, {"w": jnp.zeros(3)}, {"controller": "mlr_snet"})
  check_controller_dir(d)


def test_unknown_saved_controller_kind(tmp_path, capsys, old_results):
  import jax.numpy as jnp
  from lrmeta.meta import save_controller
  out, intact = old_results
  d = str(tmp_path / "ctl")
  save_controller(d, {"w": jnp.zeros(3)}, {"controller": "lstm"})
  line = _run(capsys, EVAL, f"--config.controller={d}", out=out)
  assert "'lstm'" in line and d in line
  intact()


def test_one_missing_folder_among_several_controllers(tmp_path, capsys,
                                                     old_results):
  import jax.numpy as jnp
  from lrmeta.meta import save_controller
  out, intact = old_results
  d = str(tmp_path / "ctl")
  save_controller(d, {"w": jnp.zeros(3)}, {"controller": "mlr_snet"})
  line = _run(capsys, EVAL, f"--config.controller={d},/no/such/ctl", out=out)
  assert "'/no/such/ctl'" in line and "no such folder" in line
  intact()


def test_check_range_messages_name_key_and_bound():
  from lrmeta.experiments.config import ConfigError, check_range, load_config
  cfg = load_config("configs/fashion_mnist.py:small")
  with cfg.unlocked():
    cfg.train.epochs = -1.0
    cfg.task.label_noise = float("nan")
  with pytest.raises(ConfigError) as e:
    check_range(cfg, "train.epochs", 1e-6)
  assert str(e.value) == "config key 'train.epochs' must be > 0, got -1.0"
  with pytest.raises(ConfigError) as e:
    check_range(cfg, "task.label_noise", 0.0, 1.0)
  assert str(e.value) == ("config key 'task.label_noise' must be in [0, 1], "
                          "got nan")
  check_range(cfg, "task.batch_size", 1)  # 32: fine


def test_every_numeric_config_key_has_a_rule():
  """Each number, tuple and enumeration in every shipped config is
  checked."""
  import ml_collections
  from lrmeta.experiments.cli import config_summary
  from lrmeta.experiments.config import flatten, load_config
  from lrmeta.experiments.validate import rule_of
  free = {"task.data_dir", "controller"}
  root = pathlib.Path(__file__).parents[1]
  configs = sorted((root / "configs").glob("*.py"))
  assert len(configs) >= 6
  for path in configs:
    rel = str(path)
    _, variants = config_summary(path)
    for v in variants:
      cfg = load_config(f"{rel}:{v}")
      assert isinstance(cfg, ml_collections.ConfigDict)
      flat = flatten(cfg)
      missing = sorted(k for k in flat if rule_of(flat, k) is None and
                       k not in free)
      assert not missing, (rel, v, missing)


@pytest.mark.parametrize("command,config", [
    ("meta-train", "configs/learned_lr.py:small"),
    ("meta-train", "configs/family_es.py:small"),
    ("rl-train", "configs/rl_family.py:small"),
    ("meta-train", "configs/mlrsnet_fmnist.py:small"),
    ("rl-train", "configs/rl_fmnist.py:cifar_small"),
])
def test_config_needing_cifar10_without_it_stops_in_one_line(
    command, config, old_results, tmp_path, monkeypatch, capsys):
  """On a machine with no CIFAR-10 source (no ../shared beside the project,
  nothing set, no TFDS data) a job that needs it stops before training with
  the line naming all three ways; its Fashion-MNIST-only variant (the family
  configs' ``small_fmnist``) passes the same checks."""
  from lrmeta.data import cifar10
  from lrmeta.experiments.config import load_config
  from lrmeta.experiments.validate import validate
  out, intact = old_results
  monkeypatch.setattr(cifar10, "beside_project",
                      lambda: [tmp_path / "shared" / "data" / "cifar10-jpeg"])
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.delenv("LRMETA_CIFAR10_JPEG", raising=False)
  monkeypatch.delenv("LRMETA_TFDS_DOWNLOAD", raising=False)
  assert main([command, "--config", config, "--quiet",
               f"--config.output_dir={out}"]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  (line,) = captured.err.strip().splitlines()
  assert line.startswith("error: CIFAR-10 not found; get it one of three ways")
  for part in ("LRMETA_CIFAR10_JPEG", "../shared/data/cifar10-jpeg",
               "TFDS cifar10", "LRMETA_TFDS_DOWNLOAD=1"):
    assert part in line, part
  intact()
  if "family" in config or "learned_lr" in config:
    variant = config.replace(":small", ":small_fmnist")
    assert set(validate(load_config(variant), command)) == {"fashion_mnist"}
