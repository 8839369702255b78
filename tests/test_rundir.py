"""Results folders: replaced whole on success, untouched on failure, resumable."""

import os
import pathlib
import subprocess
import sys

import pytest

from lrmeta.experiments.rundir import leftover_folders, run_folder


def _snapshot(folder: pathlib.Path) -> dict:
  return {str(p.relative_to(folder)): p.read_bytes()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def _old_run(tmp_path) -> pathlib.Path:
  out = tmp_path / "results" / "run"
  (out / "checkpoints").mkdir(parents=True)
  (out / "config.json").write_text('{"lr": 0.1}')
  (out / "summary.md").write_text("old summary")
  (out / "checkpoints" / "10").write_text("step 10")
  return out


def test_success_replaces_the_whole_folder(tmp_path):
  out = _old_run(tmp_path)
  with run_folder(out) as staging:
    assert staging != out and staging.parent == out.parent
    assert not any(staging.iterdir())  # fresh: nothing of the old run
    (staging / "config.json").write_text('{"lr": 0.2}')
    assert (out / "summary.md").read_text() == "old summary"  # still there
  assert _snapshot(out) == {"config.json": b'{"lr": 0.2}'}
  assert sorted(p.name for p in out.parent.iterdir()) == ["run"]


def test_success_creates_a_missing_folder(tmp_path):
  out = tmp_path / "a" / "b"
  with run_folder(out) as staging:
    (staging / "x").write_text("1")
  assert (out / "x").read_text() == "1"


def test_exception_leaves_the_old_folder_byte_identical(tmp_path):
  out = _old_run(tmp_path)
  before = _snapshot(out)
  with pytest.raises(RuntimeError, match="boom"):
    with run_folder(out) as staging:
      (staging / "config.json").write_text("new")
      raise RuntimeError("boom")
  assert _snapshot(out) == before
  assert sorted(p.name for p in out.parent.iterdir()) == ["run"]


def test_kept_subfolders_are_carried_over_and_survive_a_failure(tmp_path):
  out = _old_run(tmp_path)
  before = _snapshot(out)
  # The old run's checkpoints are copied in; the old folder stays as it was.
  with pytest.raises(KeyboardInterrupt):
    with run_folder(out, keep=("checkpoints",)) as staging:
      assert (staging / "checkpoints" / "10").read_text() == "step 10"
      (staging / "checkpoints" / "20").write_text("step 20")
      (staging / "summary.md").write_text("half")
      raise KeyboardInterrupt
  assert _snapshot(out) == before
  # The progress is kept (and only it) for the next run to resume from.
  (left,) = leftover_folders(out)
  assert _snapshot(left) == {"checkpoints/10": b"step 10",
                             "checkpoints/20": b"step 20"}
  with run_folder(out, keep=("checkpoints",)) as staging:
    assert (staging / "checkpoints" / "20").read_text() == "step 20"
    (staging / "checkpoints" / "30").write_text("step 30")
    (staging / "summary.md").write_text("done")
  assert _snapshot(out) == {"checkpoints/10": b"step 10",
                            "checkpoints/20": b"step 20",
                            "checkpoints/30": b"step 30",
                            "summary.md": b"done"}
  assert leftover_folders(out) == []
  assert sorted(p.name for p in out.parent.iterdir()) == ["run"]


def test_a_killed_run_leaves_its_checkpoints_for_the_next(tmp_path):
  out = _old_run(tmp_path)
  before = _snapshot(out)
  code = (
      "import os, sys\n"
      "from lrmeta.experiments.rundir import run_folder\n"
      "with run_folder(sys.argv[1], keep=('checkpoints',)) as s:\n"
      "  (s / 'checkpoints' / '20').write_text('step 20')\n"
      "  (s / 'summary.md').write_text('half')\n"
      "  os._exit(9)\n")
  r = subprocess.run([sys.executable, "-c", code, str(out)], check=False)
  assert r.returncode == 9
  assert _snapshot(out) == before
  (left,) = leftover_folders(out)
  with run_folder(out, keep=("checkpoints",)) as staging:
    assert (staging / "checkpoints" / "20").read_text() == "step 20"
    assert not (staging / "summary.md").exists()
  assert not left.exists()
  assert sorted(_snapshot(out)) == ["checkpoints/10", "checkpoints/20"]


def test_staging_folders_of_live_processes_are_left_alone(tmp_path):
  out = _old_run(tmp_path)
  live = out.with_name(f"run.partial-{os.getppid()}")
  (live / "checkpoints").mkdir(parents=True)
  with run_folder(out, keep=("checkpoints",)) as staging:
    assert (staging / "checkpoints" / "10").exists()  # from out, not live
  assert live.is_dir()
