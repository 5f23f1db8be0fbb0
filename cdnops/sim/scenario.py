"""Scenario files: a timed list of faults, loaded safely with line numbers in every error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from cdnops.errors import ConfigError, Issue
from cdnops.sim.faults import FaultSpec, check_fault

TOP_KEYS = ("name", "description", "faults")


@dataclass(frozen=True)
class Scenario:
    """Faults to inject, each `at_s` simulated seconds after the simulator starts.

    `where[i]` is `file:line:col` of fault i (for messages about targets, checked at start).
    """

    faults: tuple[FaultSpec, ...]
    name: str = ""
    where: tuple[tuple[str, int, int], ...] = ()


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


NodePair = tuple[yaml.Node, yaml.Node]


def _items(
    node: yaml.MappingNode, file: str, path: str, issues: list[Issue]
) -> dict[str, NodePair]:
    """Mapping entries as key -> (key node, value node), reporting duplicate keys."""
    out: dict[str, NodePair] = {}
    for key, value in node.value:
        name = str(key.value)
        if name in out:
            first, _ = _mark(out[name][0])
            line, col = _mark(key)
            where = f"{path}.{name}" if path else name
            issues.append(Issue(file, line, col, where, f"duplicate key (first on line {first})"))
        out[name] = (key, value)
    return out


def _fault(
    loader: yaml.SafeLoader, node: yaml.Node, file: str, i: int, issues: list[Issue]
) -> FaultSpec | None:
    path = f"faults[{i}]"
    if not isinstance(node, yaml.MappingNode):
        line, col = _mark(node)
        issues.append(Issue(file, line, col, path, "must be a mapping with kind and target"))
        return None
    items = _items(node, file, path, issues)
    try:
        raw = loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # an unsafe or unknown tag: the safe loader refuses it
        mark = getattr(exc, "problem_mark", None) or node.start_mark
        problem = getattr(exc, "problem", None) or str(exc)
        issues.append(Issue(file, mark.line + 1, mark.column + 1, path, f"not allowed: {problem}"))
        return None
    spec, problems = check_fault(raw)
    for where, message in problems:
        head = where.split(".")[0]
        target = items.get(head, (node, node))
        anchor = target[1]
        if "." in where and isinstance(anchor, yaml.MappingNode):
            sub = _items(anchor, file, "", [])
            anchor = sub.get(where.split(".", 1)[1], (anchor, anchor))[0]
        elif head in items and message.startswith("unknown field"):
            anchor = items[head][0]
        line, col = _mark(anchor)
        issues.append(Issue(file, line, col, f"{path}.{where}" if where else path, message))
    return spec


def _root(text: str, file: str) -> tuple[yaml.SafeLoader, yaml.MappingNode]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError([Issue(file, line, col, "", f"not valid YAML: {exc}")]) from exc
    if not isinstance(root, yaml.MappingNode):
        line, col = _mark(root) if root is not None else (0, 0)
        raise ConfigError([Issue(file, line, col, "", "must be a mapping with a faults list")])
    return loader, root


def parse_scenario(text: str, file: str) -> Scenario:
    """Parse scenario YAML text; `file` names it in error messages.

    Raises:
        ConfigError: every problem found, each with file, line and key path.
    """
    loader, root = _root(text, file)
    issues: list[Issue] = []
    items = _items(root, file, "", issues)
    for key, (knode, _) in items.items():
        if key not in TOP_KEYS:
            line, col = _mark(knode)
            issues.append(
                Issue(file, line, col, key, f"unknown key (known: {', '.join(TOP_KEYS)})")
            )
    faults_node = items.get("faults", (root, root))[1]
    if not isinstance(faults_node, yaml.SequenceNode):
        line, col = _mark(faults_node)
        issues.append(Issue(file, line, col, "faults", "must be a list of faults"))
        raise ConfigError(issues)
    specs, where = [], []
    for i, node in enumerate(faults_node.value):
        spec = _fault(loader, node, file, i, issues)
        if spec is not None:
            specs.append(spec)
            where.append((file, *_mark(node)))
    if issues:
        raise ConfigError(issues)
    name_node = items.get("name", (root, root))[1]
    name = str(name_node.value) if isinstance(name_node, yaml.ScalarNode) else ""
    return Scenario(tuple(specs), name, tuple(where))


def load_scenario(path: Path) -> Scenario:
    """Read and parse a scenario file.

    Raises:
        ConfigError: the file cannot be read or is invalid (file, line and key path given).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Issue(str(path), 0, 0, "", f"cannot read: {exc}")]) from exc
    return parse_scenario(text, str(path))
