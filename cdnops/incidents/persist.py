"""Incidents to and from the store's rows (the store knows nothing of incident types)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cdnops.errors import StoreError
from cdnops.incidents.model import (
    Incident,
    IncidentKind,
    Key,
    Scope,
    Severity,
    Status,
    TriageSignal,
    anomaly_from_json,
    anomaly_to_json,
)
from cdnops.store.db import IncidentRow

BODY_VERSION = 1


def to_row(inc: Incident) -> IncidentRow:
    """The row that stores `inc` whole."""
    body: dict[str, Any] = {
        "v": BODY_VERSION,
        "scope": str(inc.key.scope),
        "subject": inc.key.subject,
        "kind": str(inc.key.kind),
        "family": inc.key.family,
        "metric": inc.metric,
        "severity": str(inc.severity),
        "first_seen_ts": inc.first_seen_ts,
        "reopened_ts": inc.reopened_ts,
        "onset_ts": inc.onset_ts,
        "active": inc.active,
        "quiet_since_ts": inc.quiet_since_ts,
        "flaps": inc.flaps,
        "parent": inc.parent,
        "silenced_by": inc.silenced_by,
        "acknowledged_by": inc.acknowledged_by,
        "announced": inc.announced,
        "members": list(inc.members),
        "labels": dict(inc.labels),
        "anomalies": [anomaly_to_json(a) for a in inc.anomalies],
        "absorbed_total": inc.absorbed_total,
        "triage": [_signal_to_json(s) for s in inc.triage],
    }
    return IncidentRow(
        id=inc.id,
        key=str(inc.key),
        status=str(inc.status),
        site=inc.site,
        opened_ts=inc.opened_ts,
        last_seen_ts=inc.last_seen_ts,
        resolved_ts=inc.resolved_ts,
        body=body,
    )


def from_row(row: IncidentRow) -> Incident:
    """The incident a row stores; a row this code cannot read raises StoreError."""
    b = row.body
    try:
        return Incident(
            id=row.id,
            key=Key(
                Scope(b["scope"]), str(b["subject"]), IncidentKind(b["kind"]), str(b["family"])
            ),
            site=row.site,
            metric=str(b["metric"]),
            severity=Severity(b["severity"]),
            opened_ts=row.opened_ts,
            first_seen_ts=float(b["first_seen_ts"]),
            last_seen_ts=row.last_seen_ts,
            status=Status(row.status),
            resolved_ts=row.resolved_ts,
            reopened_ts=_opt(b.get("reopened_ts")),
            onset_ts=_opt(b.get("onset_ts")),  # absent in rows from before onsets
            active=bool(b["active"]),
            quiet_since_ts=_opt(b["quiet_since_ts"]),
            flaps=int(b["flaps"]),
            parent=b["parent"],
            silenced_by=b["silenced_by"],
            acknowledged_by=b.get("acknowledged_by"),  # absent in rows from before acks
            announced=bool(b["announced"]),
            members=tuple(str(m) for m in b["members"]),
            labels={str(k): str(v) for k, v in b["labels"].items()},
            anomalies=tuple(anomaly_from_json(a) for a in b["anomalies"]),
            absorbed_total=int(b["absorbed_total"]),
            triage=tuple(_signal_from_json(s) for s in b["triage"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"incident {row.id}: unreadable stored body: {exc!r}") from exc


def _signal_to_json(s: TriageSignal) -> dict[str, Any]:
    return {
        "appliance": s.appliance,
        "metric": s.metric,
        "change_ts": s.change_ts,
        "lead_s": s.lead_s,
        "shift_sigma": s.shift_sigma,
        "pearson": s.pearson,
        "spearman": s.spearman,
        "score": s.score,
        "line": s.line,
    }


def _opt(x: Any) -> float | None:
    return None if x is None else float(x)


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def _signal_from_json(d: Mapping[str, Any]) -> TriageSignal:
    return TriageSignal(
        appliance=str(d["appliance"]),
        metric=str(d["metric"]),
        change_ts=_num(d["change_ts"]),
        lead_s=_num(d["lead_s"]),
        shift_sigma=_num(d["shift_sigma"]),
        pearson=_num(d["pearson"]),
        spearman=_num(d["spearman"]),
        score=_num(d["score"]),
        line=str(d["line"]),
    )
