"""The import structure of the ``lrmeta`` package, read from its source files.

Nothing here imports ``lrmeta``: each module is parsed with :mod:`ast`, every
``import`` statement in it (at module level or inside a function) becomes an
edge of the module graph, and the tests check that the graph has no cycle
and that only ``lrmeta/experiments/`` uses the front-end libraries.

Edges. A package's ``__init__.py`` is the module named after the package.
``import lrmeta.a.b`` depends on ``lrmeta.a.b`` (not on the packages above
it: every import inside a package would otherwise loop through its
``__init__``). ``from lrmeta.a import name`` depends on ``lrmeta.a.name``
when that is a module, else on ``lrmeta.a``. Relative imports are resolved
against the importing module's package. A name that is no module maps to
its longest prefix that is one.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "lrmeta"
# Only this subpackage (and scripts/, outside the package) may use these.
FRONT_END_ONLY = ("matplotlib", "ml_collections", "argparse")
FRONT_END_PACKAGE = "lrmeta.experiments"


def module_files(root: pathlib.Path, package: str) -> dict[str, pathlib.Path]:
  """Module name -> source file, for every ``.py`` file of ``package``."""
  out = {}
  for path in sorted((root / package).rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    out[".".join(parts)] = path
  return out


def _is_package(name: str, files: dict[str, pathlib.Path]) -> bool:
  return files[name].name == "__init__.py"


def _resolve_relative(module: str, files: dict[str, pathlib.Path],
                      level: int, target: str | None) -> str:
  """The absolute name of ``from <level dots><target> import ...``."""
  parts = module.split(".")
  if not _is_package(module, files):
    parts = parts[:-1]  # a plain module's package is its parent
  if level > 1:
    parts = parts[:len(parts) - (level - 1)]
  base = ".".join(parts)
  return f"{base}.{target}" if target else base


def _known(name: str, files: dict[str, pathlib.Path]) -> str | None:
  """``name`` or its longest prefix that is a module of the package."""
  parts = name.split(".")
  while parts:
    candidate = ".".join(parts)
    if candidate in files:
      return candidate
    parts.pop()
  return None


def imports_of(module: str, files: dict[str, pathlib.Path], package: str
               ) -> list[tuple[str, int, str]]:
  """Every import in ``module``: ``(imported name, line, kind)``.

  ``kind`` is ``"internal"`` for a module of ``package`` (the name is then a
  module of ``files``) and ``"external"`` for anything else (the name is the
  top-level name, e.g. ``matplotlib`` for ``import matplotlib.pyplot``).
  """
  tree = ast.parse(files[module].read_text(), str(files[module]))
  out = []

  def add(name: str, line: int) -> None:
    if name == package or name.startswith(package + "."):
      target = _known(name, files)
      if target is not None:
        out.append((target, line, "internal"))
    else:
      out.append((name.split(".")[0], line, "external"))

  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        add(alias.name, node.lineno)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = _resolve_relative(module, files, node.level, node.module)
      else:
        base = node.module
      for alias in node.names:
        sub = f"{base}.{alias.name}"
        add(sub if sub in files else base, node.lineno)
  return out


def import_graph(root: pathlib.Path, package: str
                 ) -> dict[str, dict[str, int]]:
  """module -> {imported module of the package: first line importing it}."""
  files = module_files(root, package)
  graph = {}
  for module in files:
    edges = {}
    for name, line, kind in imports_of(module, files, package):
      if kind == "internal" and name != module:
        edges.setdefault(name, line)
    graph[module] = edges
  return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
  """One cycle ``[a, b, ..., a]`` per strongly connected component with
  more than one module (Tarjan's algorithm, iterative)."""
  index, low, on_stack, stack, comps = {}, {}, set(), [], []
  counter = 0
  for start in sorted(graph):
    if start in index:
      continue
    work = [(start, iter(sorted(graph[start])))]
    index[start] = low[start] = counter
    counter += 1
    stack.append(start)
    on_stack.add(start)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is None:
        work.pop()
        if work:
          parent = work[-1][0]
          low[parent] = min(low[parent], low[node])
        if low[node] == index[node]:
          comp = []
          while True:
            top = stack.pop()
            on_stack.discard(top)
            comp.append(top)
            if top == node:
              break
          if len(comp) > 1:
            comps.append(sorted(comp))
      elif child not in index:
        index[child] = low[child] = counter
        counter += 1
        stack.append(child)
        on_stack.add(child)
        work.append((child, iter(sorted(graph[child]))))
      elif child in on_stack:
        low[node] = min(low[node], index[child])
  return [_cycle_in(comp, graph) for comp in comps]


def _cycle_in(comp: list[str], graph: dict[str, dict[str, int]]
              ) -> list[str]:
  """A shortest cycle ``[start, ..., start]`` through the first module of a
  strongly connected component (breadth-first search inside it)."""
  members = set(comp)
  start = comp[0]
  parent = {start: None}
  frontier = [start]
  while frontier:
    nxt = []
    for node in frontier:
      for child in sorted(graph[node]):
        if child == start:
          path = [node]
          while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
          return path[::-1] + [start]
        if child in members and child not in parent:
          parent[child] = node
          nxt.append(child)
    frontier = nxt
  raise AssertionError(f"no cycle through {start}")  # not for an SCC


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
  steps = [f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
  return " -> ".join(steps + [cycle[-1]])


def front_end_imports(root: pathlib.Path, package: str, allowed: str
                      ) -> list[tuple[str, int, str]]:
  """``(module, line, library)`` for each use of a front-end-only library
  in a module of ``package`` outside the subpackage ``allowed``."""
  files = module_files(root, package)
  found = []
  for module in files:
    if module == allowed or module.startswith(allowed + "."):
      continue
    for name, line, kind in imports_of(module, files, package):
      if kind == "external" and name in FRONT_END_ONLY:
        found.append((module, line, name))
  return found


# -- the checks on lrmeta ------------------------------------------------------


def test_package_is_found():
  files = module_files(ROOT, PACKAGE)
  assert "lrmeta" in files and "lrmeta.controllers.hypergradient" in files
  graph = import_graph(ROOT, PACKAGE)
  assert "lrmeta.controllers.rates" in graph[
      "lrmeta.controllers.hypergradient"]


def test_no_import_cycle():
  graph = import_graph(ROOT, PACKAGE)
  cycles = find_cycles(graph)
  assert not cycles, "import cycles:\n" + "\n".join(
      _describe(c, graph) for c in cycles)


def test_the_protocol_sits_below_the_experiments():
  """``lrmeta.protocol`` (importable by library users) never imports
  ``lrmeta.experiments``; every job judges through it."""
  graph = import_graph(ROOT, PACKAGE)
  up = [(m, d) for m, deps in graph.items() if m.startswith("lrmeta.protocol")
        for d in deps if d.startswith(FRONT_END_PACKAGE)]
  assert not up, f"lrmeta.protocol imports lrmeta.experiments: {up}"
  jobs = [m for m in graph if m.startswith(f"{FRONT_END_PACKAGE}.jobs.")]
  assert len(jobs) >= 5, jobs
  judged = [m for m in jobs if any(
      d.startswith(("lrmeta.protocol", f"{FRONT_END_PACKAGE}.transfer",
                    f"{FRONT_END_PACKAGE}.heldout")) for d in graph[m])]
  assert sorted(judged) == sorted(jobs), sorted(set(jobs) - set(judged))


def test_front_end_libraries_only_in_experiments():
  found = front_end_imports(ROOT, PACKAGE, FRONT_END_PACKAGE)
  assert not found, "only lrmeta/experiments/ may import " + ", ".join(
      FRONT_END_ONLY) + ":\n" + "\n".join(
          f"{m} (line {line}) imports {lib}" for m, line, lib in found)


# -- the checker itself, on a synthetic package -------------------------------


def _write(root: pathlib.Path, files: dict[str, str]) -> None:
  for rel, text in files.items():
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("b_imports_a", [
    "import pkg.sub.a\n",
    "from pkg.sub import a\n",  # `a` is a submodule: an edge to it
    "from . import a\n",
    "from .a import X\n",
    "def f():\n  from ..sub.a import X\n  return X\n",  # function level
])
def test_checker_finds_a_cycle(tmp_path, b_imports_a):
  _write(tmp_path, {
      "pkg/__init__.py": "",
      "pkg/sub/__init__.py": "from pkg.sub.a import X\n",
      "pkg/sub/a.py": "from pkg.sub.b import Y\nX = 1\n",
      "pkg/sub/b.py": b_imports_a + "Y = 2\n",
      "pkg/other.py": "import pkg.sub\n",
  })
  graph = import_graph(tmp_path, "pkg")
  assert graph["pkg.sub"] == {"pkg.sub.a": 1}
  assert graph["pkg.other"] == {"pkg.sub": 1}
  cycles = find_cycles(graph)
  assert cycles == [["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]]
  assert "pkg.sub.a (line 1) -> pkg.sub.b" in _describe(cycles[0], graph)


def test_checker_accepts_a_layered_package(tmp_path):
  _write(tmp_path, {
      "pkg/__init__.py": "from pkg import high\n",
      "pkg/low.py": "import numpy\nX = 1\n",
      "pkg/mid.py": "from pkg.low import X\n",
      "pkg/high.py": "from pkg import mid\nfrom .low import X\n",
  })
  graph = import_graph(tmp_path, "pkg")
  assert graph["pkg.high"] == {"pkg.mid": 1, "pkg.low": 2}
  assert graph["pkg"] == {"pkg.high": 1}
  assert find_cycles(graph) == []


def test_checker_finds_a_longer_cycle_through_init(tmp_path):
  _write(tmp_path, {
      "pkg/__init__.py": "from pkg.a import f\n",
      "pkg/a.py": "from pkg.b import g\ndef f():\n  pass\n",
      "pkg/b.py": "def g():\n  from pkg import f\n",  # pkg.f is no module
  })
  graph = import_graph(tmp_path, "pkg")
  assert find_cycles(graph) == [["pkg", "pkg.a", "pkg.b", "pkg"]]


def test_checker_finds_front_end_imports(tmp_path):
  _write(tmp_path, {
      "pkg/__init__.py": "",
      "pkg/plot.py": "def f():\n  import matplotlib.pyplot as plt\n",
      "pkg/cfg.py": "from ml_collections import ConfigDict\n",
      "pkg/cli.py": "import argparse\n",
      "pkg/ok.py": "import argparse_like\nimport numpy\n",
      "pkg/experiments/__init__.py": "import argparse\n",
      "pkg/experiments/report.py": "import matplotlib\n",
  })
  found = front_end_imports(tmp_path, "pkg", "pkg.experiments")
  assert sorted(found) == [("pkg.cfg", 1, "ml_collections"),
                           ("pkg.cli", 1, "argparse"),
                           ("pkg.plot", 2, "matplotlib")]
