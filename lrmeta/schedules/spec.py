"""Policies as plain data: strings and dicts that configs, CLI and tables share.

A single policy is written ``name(field=value, ...)``::

  "triangle2(k0=0.01, k1=0.1, l=2000)"
  "nstep(k0=0.1, gamma=0.1, l=[150, 180])"
  "cos(k0=0.001, k1=0.1, l=500, warmup=50)"

A composite (multi-stage) policy joins stages with ``->``; every stage but the
last carries its length in steps in brackets::

  "tri2(k0=0.01, k1=0.1, l=50)[300] -> exp(k0=0.05, gamma=0.999)"

The dict forms are ``{"policy": "tri2", "k0": 0.01, ...}`` and
``{"stages": [{"policy": ..., "steps": 300, ...}, {...}]}``. Malformed specs
raise :class:`lrmeta.schedules.PolicyError` naming the bad field.
:func:`format_spec` writes the canonical string back (used as the policy's
name in every table).
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Any, Mapping, Union

import optax

from lrmeta.schedules import packed, registry
from lrmeta.schedules.registry import PolicyError


@dataclasses.dataclass(frozen=True)
class PolicySpec:
  """One policy: canonical name and the fields given (defaults not filled)."""

  name: str
  params: tuple[tuple[str, Any], ...]

  @property
  def kwargs(self) -> dict[str, Any]:
    return dict(self.params)


@dataclasses.dataclass(frozen=True)
class CompositeSpec:
  """Stages run one after another; ``lengths`` has one entry per stage but
  the last (which runs to the end)."""

  stages: tuple[PolicySpec, ...]
  lengths: tuple[int, ...]


Spec = Union[PolicySpec, CompositeSpec]


def _policy_spec(name: str, params: Mapping[str, Any]) -> PolicySpec:
  name = registry.canonical_name(name)
  registry.resolve_params(name, params)  # validates, raising on the bad field
  fields = {k: (list(v) if isinstance(v, (list, tuple)) else v)
            for k, v in params.items()}
  return PolicySpec(name, tuple((k, _freeze(v)) for k, v in fields.items()))


def _freeze(v):
  return tuple(v) if isinstance(v, list) else v


def _literal(node, where):
  try:
    value = ast.literal_eval(node)
  except ValueError:
    raise PolicyError(
        f"{where} must be a number or a list of numbers, got "
        f"{ast.unparse(node)!r}") from None
  if isinstance(value, (list, tuple)):
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool)
               for x in value):
      raise PolicyError(f"{where} must be a list of numbers, got {value!r}")
    return list(value)
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise PolicyError(f"{where} must be a number, got {value!r}")
  return value


def _parse_stage(text: str) -> tuple[PolicySpec, int | None]:
  text = text.strip()
  length = None
  if text.endswith("]") and "[" in text and not text.rstrip("]").endswith(
      "["):
    # A trailing "[N]" after the closing parenthesis is the stage length.
    head, _, tail = text.rpartition("[")
    if head.rstrip().endswith(")"):
      try:
        length = int(tail[:-1].strip())
      except ValueError:
        raise PolicyError(
            f"stage {text!r}: length in brackets must be an integer, got "
            f"{tail[:-1]!r}") from None
      if length <= 0:
        raise PolicyError(f"stage {text!r}: length must be > 0, got {length}")
      text = head.strip()
  try:
    tree = ast.parse(text, mode="eval").body
  except SyntaxError as e:
    raise PolicyError(f"cannot parse policy {text!r}: {e.msg}") from None
  if isinstance(tree, ast.Name):
    name, kw = tree.id, {}
  elif isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
    if tree.args:
      raise PolicyError(
          f"policy {tree.func.id!r}: fields must be named "
          f"(e.g. k0=0.1), got a positional {ast.unparse(tree.args[0])!r}")
    name = tree.func.id
    kw = {}
    for k in tree.keywords:
      if k.arg is None:
        raise PolicyError(f"policy {name!r}: '**' is not allowed")
      if k.arg in kw:
        raise PolicyError(f"policy {name!r}: field {k.arg!r} given twice")
      kw[k.arg] = _literal(k.value, f"policy {name!r}: field {k.arg!r}")
  else:
    raise PolicyError(f"cannot parse policy {text!r}: expected name(...)")
  return _policy_spec(name, kw), length


def parse_spec(spec: Any) -> Spec:
  """Parses a string, dict, :class:`PolicySpec` or :class:`CompositeSpec`."""
  if isinstance(spec, (PolicySpec, CompositeSpec)):
    return spec
  if isinstance(spec, str):
    parts = [s for s in spec.split("->")]
    if any(not s.strip() for s in parts):
      raise PolicyError(f"empty stage in composite policy {spec!r}")
    stages, lengths = [], []
    for i, part in enumerate(parts):
      st, n = _parse_stage(part)
      last = i == len(parts) - 1
      if not last and n is None:
        raise PolicyError(
            f"stage {i} ({part.strip()!r}) needs its length, e.g. "
            f"'{part.strip()}[300]'")
      if last and n is not None and len(parts) > 1:
        raise PolicyError(
            f"the last stage ({part.strip()!r}) runs to the end; drop "
            f"'[{n}]'")
      stages.append(st)
      if not last:
        lengths.append(n)
    if len(stages) == 1:
      return stages[0]
    return CompositeSpec(tuple(stages), tuple(lengths))
  if isinstance(spec, Mapping):
    if "stages" in spec:
      extra = set(spec) - {"stages"}
      if extra:
        raise PolicyError(f"composite policy: unknown field {sorted(extra)[0]!r}")
      stages, lengths = [], []
      raw = list(spec["stages"])
      if not raw:
        raise PolicyError("composite policy: field 'stages' is empty")
      for i, st in enumerate(raw):
        st = dict(st)
        n = st.pop("steps", None)
        if i < len(raw) - 1:
          if not isinstance(n, int) or n <= 0:
            raise PolicyError(
                f"composite policy: stage {i} field 'steps' must be a "
                f"positive integer, got {n!r}")
          lengths.append(n)
        stages.append(_dict_policy(st))
      if len(stages) == 1:
        return stages[0]
      return CompositeSpec(tuple(stages), tuple(lengths))
    return _dict_policy(spec)
  raise PolicyError(f"cannot read a policy from {type(spec).__name__}")


def _dict_policy(d: Mapping[str, Any]) -> PolicySpec:
  d = dict(d)
  if "policy" not in d:
    raise PolicyError(f"policy dict needs a 'policy' field, got {sorted(d)}")
  name = d.pop("policy")
  if not isinstance(name, str):
    raise PolicyError(f"field 'policy' must be a string, got {name!r}")
  return _policy_spec(name, d)


def _fmt_value(v):
  if isinstance(v, tuple):
    return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
  if isinstance(v, float):
    return f"{v:.6g}"
  return str(v)


def format_spec(spec: Any) -> str:
  """The canonical string of a spec (parses back to an equal spec)."""
  spec = parse_spec(spec)
  if isinstance(spec, PolicySpec):
    fields = ", ".join(f"{k}={_fmt_value(v)}" for k, v in spec.params)
    return f"{spec.name}({fields})"
  out = []
  for i, st in enumerate(spec.stages):
    s = format_spec(st)
    if i < len(spec.lengths):
      s += f"[{spec.lengths[i]}]"
    out.append(s)
  return " -> ".join(out)


def spec_to_dict(spec: Any) -> dict[str, Any]:
  """The plain-dict form of a spec (JSON/ConfigDict friendly)."""
  spec = parse_spec(spec)
  if isinstance(spec, PolicySpec):
    return {"policy": spec.name,
            **{k: (list(v) if isinstance(v, tuple) else v)
               for k, v in spec.params}}
  stages = []
  for i, st in enumerate(spec.stages):
    d = spec_to_dict(st)
    if i < len(spec.lengths):
      d["steps"] = spec.lengths[i]
    stages.append(d)
  return {"stages": stages}


def schedule_from_spec(spec: Any) -> optax.Schedule:
  """The Optax schedule a spec describes (see :func:`registry.policy`)."""
  spec = parse_spec(spec)
  if isinstance(spec, PolicySpec):
    return registry.policy(spec.name, **_kw(spec))
  return registry.compose([schedule_from_spec(s) for s in spec.stages],
                          list(spec.lengths))


def _kw(spec: PolicySpec) -> dict[str, Any]:
  return {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.params}


def stages_of(spec: Any) -> tuple[list[PolicySpec], list[int]]:
  spec = parse_spec(spec)
  if isinstance(spec, PolicySpec):
    return [spec], []
  return list(spec.stages), list(spec.lengths)


def pack_spec(spec: Any, max_stages: int | None = None
              ) -> packed.PackedPolicy:
  """Packs a spec into arrays (see :class:`packed.PackedPolicy`)."""
  stages, lengths = stages_of(spec)
  return packed.pack([(s.name, _kw(s)) for s in stages], lengths, max_stages)


def compose_specs(stages: list[Any], lengths: list[int]) -> Spec:
  """Joins specs (each may itself be composite) into one composite spec."""
  flat, flat_len = [], []
  for i, s in enumerate(stages):
    st, ln = stages_of(s)
    flat.extend(st)
    flat_len.extend(ln)
    if i < len(stages) - 1:
      # The inner stages of s use sum(ln); its last stage gets the rest.
      rest = lengths[i] - sum(ln)
      if rest <= 0:
        raise PolicyError(
            f"compose: stage {i} is {lengths[i]} steps but its own stages "
            f"already take {sum(ln)}")
      flat_len.append(rest)
  if len(flat) == 1:
    return flat[0]
  return CompositeSpec(tuple(flat), tuple(flat_len))


def parse_call(text: str) -> tuple[str, dict]:
  """``"name(a=1, b='x')"`` -> ``("name", {"a": 1, "b": "x"})`` (literals
  only; a bare ``"name"`` has no arguments)."""
  try:
    node = ast.parse(text.strip(), mode="eval").body
  except SyntaxError as e:
    raise ValueError(f"cannot parse controller {text!r}: {e.msg}") from None
  if isinstance(node, ast.Name):
    return node.id, {}
  if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and not node.args):
    raise ValueError(f"controller {text!r} must read name(key=value, ...)")
  kwargs = {}
  for kw in node.keywords:
    try:
      kwargs[kw.arg] = ast.literal_eval(kw.value)
    except ValueError:
      raise ValueError(f"controller {text!r}: field {kw.arg!r} is not a "
                       f"literal") from None
  return node.func.id, kwargs
