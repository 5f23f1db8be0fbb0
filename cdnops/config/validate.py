"""`cdnops validate FILE...`: check config, inventory and playbook files, report every issue."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdnops.config.inventory import inventory_from_document, load_inventory
from cdnops.config.settings import TOP_LEVEL_KEYS, settings_from_document
from cdnops.config.yamlload import YamlDocument, load_yaml
from cdnops.errors import ConfigError, Issue


@dataclass
class Outcome:
    """What validating one file found."""

    summary: str = ""  # e.g. `config, 200 appliances`; shown after `ok:`
    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)


@dataclass(frozen=True)
class FileKind:
    """A kind of file `validate` knows: how to recognize it and how to check it."""

    recognizes: Callable[[Mapping[str, Any]], bool]
    validate: Callable[[YamlDocument, Path, argparse.Namespace], Outcome]
    hint: str  # how an operator recognizes it, e.g. `an inventory (appliances:)`


def _validate_inventory(doc: YamlDocument, path: Path, args: argparse.Namespace) -> Outcome:
    try:
        inventory = inventory_from_document(doc)
    except ConfigError as exc:
        return Outcome(issues=list(exc.issues))
    return Outcome(f"inventory, {_appliances(len(inventory.appliances))}")


def _validate_config(doc: YamlDocument, path: Path, args: argparse.Namespace) -> Outcome:
    try:
        settings = settings_from_document(doc, path.parent)
    except ConfigError as exc:
        return Outcome(issues=list(exc.issues))
    try:
        inventory = load_inventory(settings.inventory, settings.poll.health_format)
    except ConfigError as exc:
        return Outcome(issues=[_at_inventory_key(doc, settings.inventory, i) for i in exc.issues])
    outcome = Outcome(f"config, {_appliances(len(inventory.appliances))}")
    try:
        settings.appliance_token.resolve()
    except ConfigError as exc:
        (outcome.issues if args.require_token else outcome.warnings).extend(exc.issues)
    outcome.warnings.extend(_token_file_warnings(doc, settings.appliance_token.file))
    return outcome


def _at_inventory_key(doc: YamlDocument, inventory: Path, issue: Issue) -> Issue:
    """An unreadable inventory is reported at the config line that names it."""
    if issue.line or issue.file != str(inventory):
        return issue
    return doc.issue(("inventory",), f"{inventory}: {issue.message}")


def _token_file_warnings(doc: YamlDocument, token_file: Path | None) -> list[Issue]:
    try:
        mode = token_file.stat().st_mode if token_file else 0
    except OSError:
        return []  # already reported by resolve()
    if not mode & 0o077:
        return []
    message = (
        f"token file {token_file} is open to other users (mode {mode & 0o777:o}); "
        "make it readable by the daemon's user only (chmod 600)"
    )
    return [doc.issue(("appliance_token", "file"), message)]


def _appliances(n: int) -> str:
    return f"{n} appliance" if n == 1 else f"{n} appliances"


def _validate_playbooks(doc: YamlDocument, path: Path, args: argparse.Namespace) -> Outcome:
    # imported here: validating a config should not pay for Jinja2
    from cdnops.remediate.loader import playbooks_from_document

    compiled, issues = playbooks_from_document(doc)
    if issues:
        return Outcome(issues=issues)
    return Outcome(f"{len(compiled)} playbook{'s' * (len(compiled) != 1)}")


# kind -> how to recognize and check it; tried in order, the first that recognizes wins.
# Playbook files get their entry here (e.g. recognized by a top-level `steps:` or `playbooks:`).
KINDS: dict[str, FileKind] = {
    "inventory": FileKind(
        lambda data: "appliances" in data, _validate_inventory, "an inventory (appliances:)"
    ),
    "config": FileKind(
        lambda data: bool(TOP_LEVEL_KEYS & data.keys()),
        _validate_config,
        "a config (inventory:, appliance_token:, poll:, ...)",
    ),
    "playbook": FileKind(
        lambda data: "steps" in data or "playbooks" in data,
        _validate_playbooks,
        "playbooks (steps: or playbooks:)",
    ),
}


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the YAML files in it (`*.yaml`, `*.yml`), sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    return out


def validate_file(path: Path, args: argparse.Namespace) -> Outcome:
    """Recognize and check one file."""
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        return Outcome(issues=list(exc.issues))
    if isinstance(doc.data, dict):
        for kind in KINDS.values():
            if kind.recognizes(doc.data):
                return kind.validate(doc, path, args)
    found = "an empty file" if doc.data is None else "no known top-level key"
    expected = " or ".join(kind.hint for kind in KINDS.values())
    message = f"cannot tell what kind of file this is ({found}): expected {expected}"
    return Outcome(issues=[*doc.issues, Issue(str(path), 0, 0, "", message)])


def warning_line(issue: Issue) -> str:
    """`file:line:col: warning: path: message`."""
    where = f"{issue.file}:{issue.line}:{issue.col}" if issue.line else issue.file
    path = f"{issue.path}: " if issue.path else ""
    return f"{where}: warning: {path}{issue.message}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `validate` command line."""
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="files (or folders of YAML files) to check",
    )
    parser.add_argument(
        "--require-token",
        action="store_true",
        help="fail (instead of warn) when a config's appliance token cannot be read",
    )


def run(args: argparse.Namespace) -> int:
    """Check every file; 0 when all are good, 2 otherwise.

    Each file's kind is recognized from its top-level keys (`KINDS`); a config is checked
    with the inventory it names. Issues go to stderr as `file:line:col: key.path: message`,
    `ok: FILE (kind, N appliances)` to stdout. An unreadable appliance token is a warning,
    not an error: validation often runs where the token is absent on purpose (CI, a
    workstation); `--require-token` makes it an error. A token file open to other users
    is a warning too.
    """
    all_good = True
    for path in expand(args.files):
        outcome = validate_file(path, args)
        for issue in outcome.issues:
            print(issue, file=sys.stderr)
        for warning in outcome.warnings:
            print(warning_line(warning), file=sys.stderr)
        if outcome.issues:
            all_good = False
        else:
            print(f"ok: {path} ({outcome.summary})")
    return 0 if all_good else 2
