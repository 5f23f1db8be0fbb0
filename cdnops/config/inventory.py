"""The inventory file: the fleet's appliances, validated into `cdnops.model.Inventory`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cdnops.config.issues import issues_from_validation, render
from cdnops.config.yamlload import YamlDocument, load_yaml, paused_gc
from cdnops.errors import ConfigError, Issue
from cdnops.model import Appliance, HealthFormat, Inventory

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NAME_RULE = "1 to 64 characters from A-Z a-z 0-9 _ . -"


class ApplianceEntry(BaseModel):
    """One `appliances:` item as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    site: str
    url: str
    labels: dict[str, str] = {}
    format: HealthFormat | None = None

    @field_validator("id", "site")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"must be {_NAME_RULE}, got {render(value)}")
        return value

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        problem = _url_problem(value)
        if problem:
            raise ValueError(problem)
        # endpoints are appended as `{url}/health`; a trailing slash would double it
        return value.rstrip("/")


def _url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        return f"must be a valid http:// or https:// URL, got {render(value)}"
    if parts.username is not None or parts.password is not None:
        # not echoed: it would carry a password
        return "must not contain a user or password (the token is sent as a header)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host, got {render(value)}"
    if parts.query or parts.fragment:
        return f"must be a base URL without ?query or #fragment, got {render(value)}"
    return None


class InventoryFile(BaseModel):
    """The whole inventory file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    appliances: list[ApplianceEntry]


def load_inventory(path: Path, default_format: HealthFormat = HealthFormat.JSON) -> Inventory:
    """Load and validate an inventory file; appliances keep the file's order.

    Args:
        path: the inventory file.
        default_format: the health format of entries without `format:`
            (the config's `poll.health_format`).

    Raises:
        ConfigError: with every issue found, each at its file:line:col.
    """
    with paused_gc():  # one pause for the whole load: see `paused_gc`
        return inventory_from_document(load_yaml(path), default_format)


def inventory_from_document(
    doc: YamlDocument, default_format: HealthFormat = HealthFormat.JSON
) -> Inventory:
    """Validate an already parsed inventory file."""
    issues: list[Issue] = list(doc.issues)
    parsed: InventoryFile | None = None
    if not isinstance(doc.data, dict):
        found = "an empty file" if doc.data is None else render(doc.data)
        issues.append(doc.issue((), f"must be a mapping with an appliances: list, got {found}"))
    else:
        try:
            parsed = InventoryFile.model_validate(doc.data)
        except ValidationError as exc:
            issues.extend(issues_from_validation(exc, doc, InventoryFile))
        issues.extend(_duplicate_ids(doc))
    if issues or parsed is None:
        raise ConfigError(sorted(issues, key=lambda i: (i.line, i.col))) from None
    return Inventory(
        tuple(
            Appliance(e.id, e.site, e.url, e.labels, e.format or default_format)
            for e in parsed.appliances
        )
    )


def _duplicate_ids(doc: YamlDocument) -> list[Issue]:
    """Every repeated id, on the raw data so they are reported with the other errors."""
    entries: Any = doc.data.get("appliances") if isinstance(doc.data, dict) else None
    if not isinstance(entries, list):
        return []
    first: dict[str, int] = {}
    issues = []
    for i, entry in enumerate(entries):
        ident = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(ident, str):
            continue
        j = first.setdefault(ident, i)
        if j != i:
            line = doc.line_of(("appliances", j, "id"))
            again = doc.line_of(("appliances", i, "id"))
            message = f'duplicate id "{ident}": first at line {line}, again at line {again}'
            issues.append(doc.issue(("appliances", i, "id"), message))
    return issues
