"""Results folders replaced whole, only by a run that finished.

A job writes into a fresh staging folder beside its ``output_dir``
(``<output_dir>.partial-<pid>``); :func:`run_folder` renames it into place
when the job returns, so ``output_dir`` always holds the complete output of
one run: a run that fails or is interrupted leaves the previous folder as it
was, never a mix of new ``config.json`` and old ``summary.md``.

Resuming. Jobs that checkpoint (meta-train's ``checkpoints/``, rl-train's
``ckpt/``) name those subfolders in ``keep``:

* at the start, each kept subfolder is taken from the newest staging folder
  a dead earlier run left behind (moved: it holds that run's latest
  progress) or else copied from ``output_dir`` (which stays untouched);
* when the job raises (or is interrupted with Ctrl-C), the staging folder
  is emptied except for the kept subfolders and left in place, so the next
  run resumes from them; with nothing to keep it is removed;
* a run killed outright leaves its whole staging folder; the next run takes
  the kept subfolders from it and removes it.

Staging folders of other processes that are still alive are never touched,
but two runs into one ``output_dir`` at the same time (in one process or
two) are not supported.

Example::

  with run_folder(cfg.output_dir, keep=("checkpoints",)) as out:
    ...  # write files under ``out``; checkpoints under out / "checkpoints"
  # cfg.output_dir now holds them
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from typing import Iterator, Sequence

_PARTIAL = ".partial-"


def staging_path(output_dir: str | os.PathLike) -> pathlib.Path:
  """``<output_dir>.partial-<pid>`` (``-<n>`` appended if taken): a new
  folder name for a run to write into before it finishes."""
  final = pathlib.Path(output_dir)
  base = f"{final.name}{_PARTIAL}{os.getpid()}"
  path, n = final.with_name(base), 1
  while path.exists():
    path, n = final.with_name(f"{base}-{n}"), n + 1
  return path


def _alive(pid: int) -> bool:
  """Whether another process ``pid`` runs (this one's earlier staging
  folders count as left over: a run is over when its folder is found)."""
  if pid == os.getpid():
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's live process
    return True
  return True


def leftover_folders(output_dir: str | os.PathLike) -> list[pathlib.Path]:
  """Staging folders of ``output_dir`` left by runs no longer alive, newest
  first."""
  final = pathlib.Path(output_dir)
  if not final.parent.is_dir():
    return []
  found = []
  for p in final.parent.glob(f"{final.name}{_PARTIAL}*"):
    pid = p.name[len(final.name) + len(_PARTIAL):].split("-")[0]
    if p.is_dir() and pid.isdigit() and not _alive(int(pid)):
      found.append(p)
  return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _remove(path: pathlib.Path) -> None:
  if path.is_dir() and not path.is_symlink():
    shutil.rmtree(path)
  elif path.exists() or path.is_symlink():
    path.unlink()


@contextlib.contextmanager
def run_folder(output_dir: str | os.PathLike, keep: Sequence[str] = ()
               ) -> Iterator[pathlib.Path]:
  """Yields a fresh staging folder that replaces ``output_dir`` on success.

  Args:
    output_dir: the results folder (created with its parents on success).
    keep: names of subfolders carried over from an earlier run (checkpoints
      to resume from); see the module docstring.

  Yields:
    The staging folder to write into. Messages and saved files should name
    ``output_dir``, the place the results end up.
  """
  final = pathlib.Path(output_dir)
  if final.exists() and not final.is_dir():
    raise NotADirectoryError(f"output_dir {str(final)!r} is a file")
  final.parent.mkdir(parents=True, exist_ok=True)
  leftovers = leftover_folders(final)
  staging = staging_path(final)
  staging.mkdir()
  for name in keep:
    source = next((p / name for p in leftovers if (p / name).is_dir()), None)
    if source is not None:
      source.rename(staging / name)
    elif (final / name).is_dir():
      shutil.copytree(final / name, staging / name, symlinks=True)
  for p in leftovers:  # their progress (if any) now lives in ``staging``
    _remove(p)
  try:
    yield staging
  except BaseException:
    kept = [n for n in keep if (staging / n).exists()]
    if kept:
      for entry in staging.iterdir():
        if entry.name not in kept:
          _remove(entry)
    else:
      _remove(staging)
    raise
  old = final.with_name(f"{final.name}.old-{os.getpid()}")
  if final.exists():
    _remove(old)
    final.rename(old)
  staging.rename(final)
  _remove(old)


__all__ = ["leftover_folders", "run_folder", "staging_path"]
