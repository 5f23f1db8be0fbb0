"""Safe YAML loading that keeps the line and column of every key, value and item."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cdnops.errors import ConfigError, Issue

Loc = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(frozen=True, slots=True)
class _Duplicate:
    mapping: yaml.MappingNode
    key: str
    first: yaml.Node
    again: yaml.Node


class _Marking(yaml.constructor.SafeConstructor):
    """The safe constructor, plus duplicate-key detection and a faster build.

    A mixin: the loaders below put it in front of the C or the Python parser, whose
    node tree is kept for the marks. It derives from the constructor only, so that the
    C loader's parser stays ahead of the Python one in the MRO.
    """

    duplicates: list[_Duplicate]
    _built: dict[int, Any]

    if TYPE_CHECKING:  # provided by the parser half of the concrete loaders

        def __init__(self, stream: str) -> None: ...
        def get_single_node(self) -> yaml.Node | None: ...
        def dispose(self) -> None: ...

    def start(self) -> None:
        """Fresh state for one document."""
        self.duplicates = []
        self._built = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Hashable, yaml.Node] = {}
        for key_node, _ in node.value:
            # merge keys (`<<: *base`) may legitimately repeat keys they bring in
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            first = seen.setdefault(key, key_node)
            if first is not key_node:
                self.duplicates.append(_Duplicate(node, str(key), first, key_node))
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    def build(self, node: yaml.Node) -> Any:
        """Like `construct_document`, several times faster on plain maps, lists and strings.

        Anything else (tags, merge keys, timestamps, numbers) goes through the safe
        constructor, so the result is the same; `_built` keeps aliases shared.
        """
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value
        built = self._built.get(id(node))
        if built is not None:
            return built
        if node.tag == _SEQ_TAG and isinstance(node, yaml.SequenceNode):
            items: list[Any] = []
            self._built[id(node)] = items  # before the items: a recursive alias finds it
            items.extend(self.build(child) for child in node.value)
            return items
        if (
            isinstance(node, yaml.MappingNode)
            and node.tag == _MAP_TAG
            and not any(k.tag == _MERGE_TAG for k, _ in node.value)
        ):
            return self._build_mapping(node)
        return self.construct_object(node, deep=True)

    def _build_mapping(self, node: yaml.MappingNode) -> dict[Any, Any]:
        mapping: dict[Any, Any] = {}
        self._built[id(node)] = mapping
        first: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.build(key_node)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found a list or mapping as a key",
                    key_node.start_mark,
                )
            earlier = first.setdefault(key, key_node)
            if earlier is not key_node:
                self.duplicates.append(_Duplicate(node, str(key), earlier, key_node))
            mapping[key] = self.build(value_node)
        return mapping


class PyMarkingLoader(_Marking, yaml.SafeLoader):
    """Pure-Python parsing: used when PyYAML was built without libyaml."""


if hasattr(yaml, "CSafeLoader"):

    class CMarkingLoader(_Marking, yaml.CSafeLoader):
        """libyaml parsing, several times faster."""

    MarkingLoader: type[_Marking] = CMarkingLoader
else:  # pragma: no cover - depends on how PyYAML was built
    MarkingLoader = PyMarkingLoader


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A loaded YAML file: plain data, the node tree for marks, and duplicate-key issues."""

    file: str
    data: Any
    root: yaml.Node | None
    issues: tuple[Issue, ...] = field(default=())

    def node_at(self, loc: Loc, *, key: bool = False) -> yaml.Node | None:
        """The deepest node along `loc` (the key node of the last step when `key`)."""
        node = self.root
        for i, step in enumerate(loc):
            child = _child(node, step, key=key and i == len(loc) - 1)
            if child is None:
                break
            node = child
        return node

    def issue(self, loc: Loc, message: str, *, key: bool = False) -> Issue:
        """An issue at the place `loc` points to (or the nearest enclosing one)."""
        node = self.node_at(loc, key=key)
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (0, 0)
        return Issue(self.file, line, col, format_loc(loc), message)

    def line_of(self, loc: Loc) -> int:
        """The 1-based line where `loc` is, 0 when unknown."""
        node = self.node_at(loc)
        return node.start_mark.line + 1 if node else 0


def _child(node: yaml.Node | None, step: str | int, *, key: bool) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        found = None
        for key_node, value_node in node.value:
            # the last one wins, as when the mapping was built (merged keys come first)
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(step):
                found = key_node if key else value_node
        return found
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int):
        return node.value[step] if 0 <= step < len(node.value) else None
    return None


def format_loc(loc: Loc) -> str:
    """`("appliances", 3, "url")` -> `appliances[3].url`."""
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out


def read_text(path: Path, *, what: str = "file") -> str:
    """Read a UTF-8 file; any failure becomes a ConfigError naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([Issue(str(path), 0, 0, "", f"cannot read {what}: {reason}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8 text (invalid byte at offset {exc.start})"
        raise ConfigError([Issue(str(path), 0, 0, "", msg)]) from None


def load_yaml(path: Path) -> YamlDocument:
    """Read and parse one YAML file.

    Raises:
        ConfigError: the file cannot be read or is not valid YAML. Duplicate keys do not
            raise: they are in `YamlDocument.issues`, so callers can report them with the rest.
    """
    return parse_yaml(read_text(path), str(path))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Suspend the cyclic garbage collector while a big file is turned into objects.

    Every few hundred allocations it would rescan the whole growing tree of nodes, which
    makes loading superlinear (a 20,000-entry inventory took twice as long). Reference
    counting still frees memory meanwhile; the collector resumes as it was found.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_yaml(text: str, file: str, loader_class: type[_Marking] = MarkingLoader) -> YamlDocument:
    """Parse YAML text; `file` is only used to name the place in issues."""
    loader = loader_class(text)
    loader.start()
    try:
        with paused_gc():
            root = loader.get_single_node()
            data = loader.build(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_issue(file, exc)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Issue(file, 0, 0, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    doc = YamlDocument(file, data, root)
    if loader.duplicates:
        issues = tuple(_duplicate_issue(doc, d) for d in loader.duplicates)
        doc = YamlDocument(file, data, root, issues)
    return doc


def _syntax_issue(file: str, exc: yaml.MarkedYAMLError) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "unreadable"
    message = f"invalid YAML: {problem}"
    if exc.context and exc.problem and exc.problem.startswith("but "):
        # PyYAML splits "expected X, but found Y" across context and problem
        message = f"invalid YAML: {exc.context}, {exc.problem}"
    elif exc.context and exc.problem and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if mark is None:
        return Issue(file, 0, 0, "", message)
    return Issue(file, mark.line + 1, mark.column + 1, "", message)


def _duplicate_issue(doc: YamlDocument, dup: _Duplicate) -> Issue:
    parent = _find_loc(doc.root, dup.mapping) or ()
    mark = dup.again.start_mark
    first_line = dup.first.start_mark.line + 1
    message = (
        f'duplicate key "{dup.key}": first at line {first_line}, again at line {mark.line + 1}'
        " (only one may be given)"
    )
    return Issue(doc.file, mark.line + 1, mark.column + 1, format_loc((*parent, dup.key)), message)


def _find_loc(root: yaml.Node | None, target: yaml.Node) -> Loc | None:
    """The path from the root to `target`; a walk of the tree, done only for duplicates."""
    seen: set[int] = set()
    for loc, node in _walk(root, (), seen):
        if node is target:
            return loc
    return None


def _walk(node: yaml.Node | None, loc: Loc, seen: set[int]) -> Iterator[tuple[Loc, yaml.Node]]:
    if node is None or id(node) in seen:  # aliases may make the tree a graph
        return
    seen.add(id(node))
    yield loc, node
    children: Sequence[tuple[str | int, yaml.Node]] = ()
    if isinstance(node, yaml.MappingNode):
        children = [(str(k.value), v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    elif isinstance(node, yaml.SequenceNode):
        children = list(enumerate(node.value))
    for step, child in children:
        yield from _walk(child, (*loc, step), seen)
