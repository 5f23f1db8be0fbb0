"""An alert's labels -> what the incident is about: scope, subject, site, severity, labels."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from cdnops.config.intake import AlertmanagerConfig
from cdnops.incidents.model import FLEET_SUBJECT, IncidentKind, Key, Scope, Severity
from cdnops.intake.webhook import Alert


@dataclass(frozen=True, slots=True)
class Target:
    """The incident an alert belongs to (`key`), and what the alert tells about it."""

    key: Key
    site: str
    severity: Severity
    labels: dict[str, str]
    started_ts: float | None
    summary: str


# The inventory's rule for appliance ids and sites: only such a value can name one, and
# it is safe in logs, topics and URLs.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NAME_RULE = "1 to 64 characters from A-Z a-z 0-9 _ . -"
MAX_ALERT_NAME = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Skip(ValueError):
    """An alert the intake takes but cannot map; the message says why."""


def host_of(value: str) -> str:
    """`sea01-a01:9100` -> `sea01-a01`, `[::1]:9100` -> `::1`; anything else unchanged."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return value
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return value if ":" in host else host


def selected(config: AlertmanagerConfig, labels: Mapping[str, str]) -> bool:
    """Whether the alert passes the `match` filter (every matcher must match)."""
    return all(fnmatchcase(labels.get(k, ""), p) for k, p in config.match.items())


def target_of(
    config: AlertmanagerConfig, alert: Alert, site_of: Callable[[str], str | None]
) -> Target:
    """Map a selected alert; raises Skip when it cannot name an incident.

    `site_of` gives an inventory appliance's site (None when it is not known): it fills
    the site of an appliance alert that carries no site label.
    """
    labels = alert.labels
    name = labels.get(config.name_label, "").strip()
    if not name:
        raise Skip(f"no {config.name_label} label")
    if len(name) > MAX_ALERT_NAME or _CONTROL.search(name):
        raise Skip(
            f"{config.name_label} {name[:MAX_ALERT_NAME]!r} is longer than {MAX_ALERT_NAME} "
            "characters or holds control characters"
        )
    appliance = _first(labels, config.appliance_labels)
    site = _first(labels, config.site_labels)
    if site and not _NAME.fullmatch(site):
        raise Skip(f"site {site[:64]!r} is not a site name ({_NAME_RULE})")
    if appliance:
        appliance = host_of(appliance)
        if not _NAME.fullmatch(appliance):
            raise Skip(f"appliance {appliance[:64]!r} is not an appliance id ({_NAME_RULE})")
        scope, subject = Scope.APPLIANCE, appliance
        site = site or site_of(appliance) or ""
    elif site:
        scope, subject = Scope.SITE, site
    else:
        scope, subject = Scope.FLEET, FLEET_SUBJECT
    return Target(
        key=Key(scope, subject, IncidentKind.ALERT, name),
        site=site,
        severity=_severity(config, labels.get(config.severity_label)),
        labels={k: v for k, v in labels.items() if _copied(config, k)},
        started_ts=alert.starts_ts,
        summary=alert.annotations.get("summary", "") or alert.annotations.get("description", ""),
    )


def _first(labels: Mapping[str, str], names: tuple[str, ...]) -> str:
    return next((v.strip() for n in names if (v := labels.get(n, "")).strip()), "")


def _severity(config: AlertmanagerConfig, value: str | None) -> Severity:
    wanted = (value or "").strip().lower()
    mapped = next((s for k, s in config.severities.items() if k.lower() == wanted), None)
    return Severity(mapped or config.default_severity)


def _copied(config: AlertmanagerConfig, name: str) -> bool:
    return any(fnmatchcase(name, p) for p in config.copy_labels)
