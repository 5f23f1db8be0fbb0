"""Event payloads: versioned JSON, the same bytes on every re-send of an event."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from cdnops.incidents.events import IncidentEvent
from cdnops.incidents.persist import to_row
from cdnops.remediate.audit import RemediationEvent

VERSION = 1  # bumped on any change a consumer could trip over; fields are only ever added
EXECUTION_EVENTS = {
    "execution_started": "started",
    "execution_finished": "finished",
    "execution_interrupted": "interrupted",
}

_OPTS = orjson.OPT_NON_STR_KEYS


def _dumps(body: dict[str, Any]) -> bytes:
    # str() for anything orjson cannot encode (an enum subclass, a Path in an audit
    # detail): an event must never be lost to its serializer
    return orjson.dumps(body, default=str, option=_OPTS)


def _envelope(instance: str, type_: str, event: str, ts: float, data: dict[str, Any]) -> bytes:
    return _dumps(
        {
            "event_id": str(uuid.uuid4()),
            "instance": instance,
            "type": type_,
            "event": event,
            "ts": ts,
            "data": data,
        }
    )


def incident_payload(instance: str, ev: IncidentEvent) -> bytes:
    """An incident event: the whole incident as the store keeps it, with the change."""
    row = to_row(ev.incident)
    data: dict[str, Any] = {
        "id": row.id,
        "key": row.key,
        "status": row.status,
        "site": row.site,
        "opened_ts": row.opened_ts,
        "last_seen_ts": row.last_seen_ts,
        "resolved_ts": row.resolved_ts,
    }
    data.update((k, v) for k, v in row.body.items() if k != "v")
    data["change"] = str(ev.change) if ev.change is not None else None
    data["detail"] = ev.detail
    return _envelope(instance, "incident", str(ev.type), ev.ts, data)


def _remediation_data(ev: RemediationEvent) -> dict[str, Any]:
    return {
        "playbook": ev.playbook,
        "incident_id": ev.incident_id,
        "subject": ev.subject,
        "execution_id": ev.execution_id,
    }


def audit_payload(instance: str, ev: RemediationEvent) -> bytes:
    """A remediation decision, as the audit records it."""
    data = _remediation_data(ev)
    data["detail"] = ev.detail
    return _envelope(instance, "audit", ev.event, ev.ts, data)


def execution_payload(instance: str, ev: RemediationEvent) -> bytes | None:
    """An execution's start or end, or None for a decision that is neither."""
    event = EXECUTION_EVENTS.get(ev.event)
    if event is None:
        return None
    data = _remediation_data(ev)
    status = ev.detail.get("status")
    if event == "interrupted":
        status = "interrupted"
    data["status"] = str(status) if status is not None else "running"
    data["dry_run"] = bool(ev.detail.get("dry_run", False))
    if "reason" in ev.detail:
        data["reason"] = str(ev.detail["reason"])
    return _envelope(instance, "execution", event, ev.ts, data)


def wire(seq: int, stored: bytes) -> bytes:
    """The bytes published for the outbox row `seq`: the stored event with `v` and `seq` first.

    Spliced rather than re-encoded: a re-send is byte for byte the same message.
    """
    if not stored.startswith(b"{") or stored == b"{}":
        raise ValueError(f"outbox row {seq}: payload is not a JSON object")
    return b'{"v":%d,"seq":%d,' % (VERSION, seq) + stored[1:]


def status_payload(
    instance: str, state: str, ts: float, *, version: str, outbox: int, dropped: int
) -> bytes:
    """The retained daemon status (`online` or `offline`)."""
    return _dumps(
        {
            "v": VERSION,
            "type": "status",
            "instance": instance,
            "state": state,
            "ts": ts,
            "version": version,
            "outbox_events": outbox,
            "dropped_total": dropped,
        }
    )
