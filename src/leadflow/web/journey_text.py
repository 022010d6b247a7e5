"""A journey definition as the console's editor shows it (YAML) and its problems, each with its line.

The journeys service names each problem by its place in the definition (``steps.2.duration``); the
editor shows that place and the line of the YAML it is on, found by walking the parsed YAML's nodes
along the path (a part of the path that is not a key or an index, like the step type pydantic adds
for a union, is skipped; a missing key points at the mapping that lacks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from leadflow.kernel.errors import Conflict, Invalid, LeadflowError, NotFound

FIRST = ("name", "description", "trigger", "entry", "settings", "variables", "steps")
STEP_FIRST = ("id", "name", "type")
MAX_SIZE = 200_000  # characters of YAML accepted
MAX_NODES = 100_000  # values once aliases are expanded: anchors reused, never a "billion laughs"


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str


def status_of(exc: LeadflowError) -> int:
    """The HTTP status of a domain error, as the API answers it."""
    for kind, status in ((Invalid, 422), (Conflict, 409), (NotFound, 404)):
        if isinstance(exc, kind):
            return status
    return 400


def _expanded(node: yaml.Node | None, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (each shared node sized once)."""
    if node is None:
        return 0
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded(k, sizes) + _expanded(v, sizes) for k, v in node.value)
    sizes[id(node)] = size = min(size, MAX_NODES + 1)
    return size


def load(source: str) -> Any:
    """``yaml.safe_load`` refusing (``yaml.YAMLError``) a document of more than :data:`MAX_NODES`
    values once its aliases are expanded: anchors of anchors grow exponentially (tiny text, millions
    of values to validate and store)."""
    if _expanded(yaml.compose(source, Loader=yaml.SafeLoader), {}) > MAX_NODES:
        raise yaml.YAMLError(f"more than {MAX_NODES:,} values once its aliases (*name) are expanded")
    return yaml.safe_load(source)


def read(source: str) -> tuple[dict[str, Any], list[Problem]]:
    """The YAML typed in as a mapping, or the problem with its line."""
    if len(source) > MAX_SIZE:
        return {}, [Problem("", None, f"a definition is at most {MAX_SIZE:,} characters")]
    try:
        data = load(source)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        return {}, [Problem("", mark.line + 1 if mark else None, f"not valid YAML: {problem}")]
    except RecursionError:
        return {}, [Problem("", None, "the YAML nests too deep")]
    if not isinstance(data, dict):
        return {}, [Problem("", None, "a journey definition is a mapping: name, trigger, steps …")]
    return data, []


def problems_of(exc: LeadflowError, source: str) -> list[Problem]:
    """Each problem of a refused definition with its path and line (one problem if it names none)."""
    details = exc.details if isinstance(exc.details, list) else []
    found = [
        Problem(str(d.get("path", "")), line_of(source, str(d.get("path", ""))), str(d.get("message", "")))
        for d in details
        if isinstance(d, dict)
    ]
    return found or [Problem("", None, exc.message)]


def line_of(source: str, path: str) -> int | None:
    """The line (from 1) of the YAML node at ``path`` (dotted keys and indexes), or None."""
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None or not path:
        return None
    for part in path.split("."):
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), node)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
    line: int = node.start_mark.line + 1
    return line


def _ordered(data: dict[str, Any], first: tuple[str, ...]) -> dict[str, Any]:
    return {
        **{k: data[k] for k in first if k in data},
        **{k: v for k, v in data.items() if k not in first},
    }


def dump(definition: dict[str, Any]) -> str:
    """A definition as YAML for the editor: the usual keys first (a stored copy may have lost order)."""
    data = _ordered(definition, FIRST)
    if isinstance(data.get("steps"), list):
        data["steps"] = [_ordered(s, STEP_FIRST) if isinstance(s, dict) else s for s in data["steps"]]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
