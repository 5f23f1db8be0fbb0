"""Playbook files -> compiled playbooks; every problem as `file:line:col: path: message`."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cdnops.config.issues import issues_from_validation
from cdnops.config.yamlload import Loc, YamlDocument, load_yaml
from cdnops.errors import ConfigError, Issue
from cdnops.model import CONTRACT_METRICS
from cdnops.remediate.actions import APPLIANCE_ACTIONS, REGISTRY, ActionSpec, VerifyParams
from cdnops.remediate.schema import Playbook, PlaybookFile, Step
from cdnops.remediate.semantics import trigger_issues
from cdnops.remediate.templates import (
    Expression,
    Template,
    TemplateError,
    compile_expression,
    compile_template,
    is_template,
    referenced,
    unknown_names,
)

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class CompiledStep:
    """A step with its action resolved, parameters validated and templates compiled."""

    step: Step
    spec: ActionSpec
    params: BaseModel
    templates: dict[tuple[str, ...], Template]  # param path -> template
    when: Expression | None
    condition: Expression | None  # verify / wait_until

    @property
    def label(self) -> str:
        """The step's name, or its action."""
        return self.step.name or self.step.action


@dataclass(frozen=True)
class CompiledPlaybook:
    """A valid playbook, ready to match and run."""

    playbook: Playbook
    file: str
    line: int
    conditions: tuple[Expression, ...]
    steps: tuple[CompiledStep, ...]
    on_failure: tuple[CompiledStep, ...]

    @property
    def name(self) -> str:
        """The playbook's unique name."""
        return self.playbook.name

    @property
    def removes_capacity(self) -> bool:
        """Whether any step may take the appliance out of service."""
        return any(s.spec.removes_capacity for s in (*self.steps, *self.on_failure))


@dataclass
class PlaybookSet:
    """Every playbook loaded from a set of files, by name."""

    playbooks: dict[str, CompiledPlaybook] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.playbooks)


def playbook_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a folder stands for its `*.yaml` and `*.yml` files, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()))
        else:
            out.append(path)
    return out


def load_playbooks(
    paths: Iterable[Path], *, metrics: Collection[str] = CONTRACT_METRICS
) -> PlaybookSet:
    """Load and check playbook files (or folders of them).

    Raises:
        ConfigError: every issue of every file (syntax, schema, meaning, duplicate names).
    """
    issues: list[Issue] = []
    result = PlaybookSet()
    files = playbook_files(paths)
    for path in files:
        try:
            doc = load_yaml(path)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        compiled, found = playbooks_from_document(doc, metrics=metrics)
        issues.extend(found)
        for pb in compiled:
            if (first := result.playbooks.get(pb.name)) is not None:
                message = (
                    f'duplicate playbook name "{pb.name}" (first at {first.file}:{first.line})'
                )
                issues.append(Issue(pb.file, pb.line, 1, "name", message))
            else:
                result.playbooks[pb.name] = pb
    if issues:
        raise ConfigError(issues)
    result.files = tuple(str(p) for p in files)
    return result


def playbooks_from_document(
    doc: YamlDocument, *, metrics: Collection[str] = CONTRACT_METRICS
) -> tuple[list[CompiledPlaybook], list[Issue]]:
    """Check one parsed file: one playbook, or `playbooks:` with several."""
    issues = list(doc.issues)
    data = doc.data
    if isinstance(data, dict) and "playbooks" in data:
        model: type[BaseModel] = PlaybookFile
        items: list[tuple[Loc, Any]] = []
        if isinstance(data["playbooks"], list):
            items = [(("playbooks", i), d) for i, d in enumerate(data["playbooks"])]
    elif isinstance(data, dict):
        model, items = Playbook, [((), data)]
    else:
        issues.append(doc.issue((), "must be a playbook (name:, trigger:, steps:) or playbooks:"))
        return [], issues
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return [], issues + issues_from_validation(exc, doc, model)
    out = []
    for loc, raw in items:
        compiled, found = _compile(doc, loc, Playbook.model_validate(raw), metrics)
        issues.extend(found)
        if compiled is not None and not found:
            out.append(compiled)
    return out, sorted(issues, key=lambda i: (i.line, i.col))


def _compile(
    doc: YamlDocument, loc: Loc, pb: Playbook, metrics: Collection[str]
) -> tuple[CompiledPlaybook | None, list[Issue]]:
    issues = [doc.issue((*loc, *at), msg) for at, msg in trigger_issues(pb, metrics)]
    conditions = []
    for i, source in enumerate(pb.conditions):
        expr = _expression(doc, (*loc, "conditions", i), source, metrics, issues)
        if expr is not None:
            conditions.append(expr)
    steps = _steps(doc, (*loc, "steps"), pb, pb.steps, metrics, issues)
    on_failure = _steps(doc, (*loc, "on_failure"), pb, pb.on_failure, metrics, issues)
    if issues:
        return None, issues
    line = doc.line_of(loc)
    return CompiledPlaybook(pb, doc.file, line, tuple(conditions), steps, on_failure), issues


def _steps(
    doc: YamlDocument,
    loc: Loc,
    pb: Playbook,
    steps: Sequence[Step],
    metrics: Collection[str],
    issues: list[Issue],
) -> tuple[CompiledStep, ...]:
    out = []
    stopped_at: int | None = None
    for i, step in enumerate(steps):
        here = (*loc, i)
        if stopped_at is not None and i == stopped_at + 1:
            message = f"unreachable: steps[{stopped_at}] stops the execution unconditionally"
            issues.append(doc.issue(here, message))
        compiled = _step(doc, here, pb, step, metrics, issues)
        if compiled is None:
            continue
        out.append(compiled)
        if compiled.spec.stops and compiled.when is None and stopped_at is None:
            stopped_at = i
    return tuple(out)


def _step(
    doc: YamlDocument,
    loc: Loc,
    pb: Playbook,
    step: Step,
    metrics: Collection[str],
    issues: list[Issue],
) -> CompiledStep | None:
    spec = REGISTRY.get(step.action)
    if spec is None:
        close = difflib.get_close_matches(step.action, REGISTRY, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        message = f'unknown action "{step.action}" (known: {", ".join(sorted(REGISTRY))}){hint}'
        issues.append(doc.issue((*loc, "action"), message))
        return None
    if spec.name in APPLIANCE_ACTIONS and "appliance" not in pb.trigger.scope:
        message = f"{spec.name} acts on an appliance, but the trigger's scope has no appliance"
        issues.append(doc.issue((*loc, "action"), message))
    try:
        params = spec.params.model_validate(step.params)
    except ValidationError as exc:
        issues.extend(issues_from_validation(exc, doc, spec.params, (*loc, "params")))
        return None
    when = None
    if step.when is not None:
        when = _expression(doc, (*loc, "when"), step.when, metrics, issues)
    condition = None
    if isinstance(params, VerifyParams):
        cloc = (*loc, "params", "condition")
        condition = _expression(doc, cloc, params.condition, metrics, issues)
    templates = _templates(doc, (*loc, "params"), step.params, metrics, issues)
    return CompiledStep(step, spec, params, templates, when, condition)


def _templates(
    doc: YamlDocument,
    loc: Loc,
    params: dict[str, Any],
    metrics: Collection[str],
    issues: list[Issue],
) -> dict[tuple[str, ...], Template]:
    found: dict[tuple[str, ...], Template] = {}
    flat: list[tuple[tuple[str, ...], Any]] = []
    for key, value in params.items():
        if isinstance(value, dict):
            flat.extend(((key, str(k2)), v2) for k2, v2 in value.items())
        elif key != "condition":  # a condition is an expression, compiled as one
            flat.append(((key,), value))
    for path, value in flat:
        if not isinstance(value, str) or not is_template(value):
            continue
        try:
            found[path] = compile_template(value)
        except TemplateError as exc:
            issues.append(doc.issue((*loc, *path), str(exc)))
            continue
        issues.extend(_name_issues(doc, (*loc, *path), value, metrics, expression=False))
    return found


def _expression(
    doc: YamlDocument, loc: Loc, source: str, metrics: Collection[str], issues: list[Issue]
) -> Expression | None:
    try:
        expr = compile_expression(source)
    except TemplateError as exc:
        issues.append(doc.issue(loc, str(exc)))
        return None
    found = _name_issues(doc, loc, source, metrics, expression=True)
    issues.extend(found)
    return None if found else expr


def _name_issues(
    doc: YamlDocument, loc: Loc, source: str, metrics: Collection[str], *, expression: bool
) -> list[Issue]:
    out = []
    for name in unknown_names(source, expression=expression):
        known = "incident, appliance, playbook, now"
        out.append(doc.issue(loc, f'unknown name "{name}" (the context has {known})'))
    for path in referenced(source, expression=expression):
        if len(path) == 3 and path[:2] == ("appliance", "metrics") and path[2] not in metrics:
            close = difflib.get_close_matches(path[2], list(metrics), n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            out.append(doc.issue(loc, f'unknown metric "{path[2]}"{hint}'))
    return out


def matches_any(value: str, patterns: Iterable[str]) -> bool:
    """Shell-style match against any pattern."""
    return any(fnmatchcase(value, p) for p in patterns)
