"""Sandboxed templates and expressions over the incident and appliance context."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# One environment for the whole process: it is immutable once built and thread-safe.
ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
CONTEXT_NAMES = frozenset({"incident", "appliance", "playbook", "now"})


class TemplateError(ValueError):
    """A template or expression does not compile or does not render."""


@dataclass(frozen=True)
class Template:
    """A string parameter: compiled at load, rendered per execution."""

    source: str
    compiled: jinja2.Template

    def render(self, context: Mapping[str, Any]) -> str:
        """Render; appliance data only ever enters as context, never as template source."""
        try:
            return self.compiled.render(context)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {self.source!r}: {exc}") from None


@dataclass(frozen=True)
class Expression:
    """A condition (`when`, `conditions`, `verify`): compiled at load, evaluated per tick."""

    source: str
    compiled: Any  # jinja2's TemplateExpression is not exported with a type

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        """True or False; an error (an undefined name, a bad comparison) raises TemplateError."""
        try:
            return bool(self.compiled(**context))
        except (jinja2.TemplateError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise TemplateError(f"expression {self.source!r}: {exc}") from None


def compile_template(source: str) -> Template:
    """Compile a string parameter; raises TemplateError with Jinja's reason."""
    try:
        return Template(source, ENV.from_string(source))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template error: {exc.message}") from None


def compile_expression(source: str) -> Expression:
    """Compile a condition; raises TemplateError with Jinja's reason."""
    try:
        return Expression(source, ENV.compile_expression(source, undefined_to_none=False))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"expression error: {exc.message}") from None


def is_template(value: str) -> bool:
    """Whether a string parameter uses template syntax (plain strings are kept as they are)."""
    return "{{" in value or "{%" in value


def referenced(source: str, *, expression: bool) -> Iterator[tuple[str, ...]]:
    """Attribute paths read from the context, e.g. `("appliance", "metrics", "cpu_util")`.

    Used at load to check names an operator wrote against the known metrics and names.
    """
    try:
        tree = ENV.parse(f"{{{{ {source} }}}}" if expression else source)
    except jinja2.TemplateSyntaxError:
        return
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        path = _path(node)
        if path and path[0] in CONTEXT_NAMES | {"appliance"}:
            yield path


def unknown_names(source: str, *, expression: bool) -> list[str]:
    """Top-level names that are not part of the context (a typo, mostly)."""
    try:
        tree = ENV.parse(f"{{{{ {source} }}}}" if expression else source)
    except jinja2.TemplateSyntaxError:
        return []
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    names = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}
    allowed = CONTEXT_NAMES | assigned | {"true", "false", "none", "True", "False", "None"}
    return sorted(names - allowed)


def _path(node: nodes.Node) -> tuple[str, ...]:
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        inner = _path(node.node)
        return (*inner, node.attr) if inner else ()
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        inner = _path(node.node)
        return (*inner, str(node.arg.value)) if inner else ()
    return ()
