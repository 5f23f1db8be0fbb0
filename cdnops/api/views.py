"""JSON views of the daemon's objects for /api/v1: appliances, incidents, executions, silences,
playbooks. Pure functions; the handlers in `cdnops/api/v1.py` call them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cdnops.incidents.model import Incident, TimelineEntry, anomaly_to_json
from cdnops.incidents.silences import Silence
from cdnops.model import (
    Anomaly,
    ApplianceState,
    DetectionResult,
    FleetFrame,
    Inventory,
    PollFailure,
    ServiceStatus,
)
from cdnops.remediate.loader import CompiledPlaybook
from cdnops.store.db import AuditRow, ExecutionRow

STATES = tuple(s.name.lower() for s in ApplianceState)


def iso(ts: float | None) -> str | None:
    """An epoch time as RFC 3339 UTC, for people reading the JSON."""
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def anomalies_by_appliance(result: DetectionResult | None) -> dict[str, list[Anomaly]]:
    """The active anomalies of the latest tick, per appliance."""
    out: dict[str, list[Anomaly]] = {}
    for a in result.active if result is not None else ():
        out.setdefault(a.appliance, []).append(a)
    return out


def select_rows(
    frame: FleetFrame,
    anomalous: dict[str, list[Anomaly]],
    *,
    site: str | None,
    state: str | None,
    only_anomalous: bool,
) -> np.ndarray:
    """Row numbers of the appliances that pass the filters, in inventory order (vectorized:
    a 20,000-appliance fleet filters in well under a millisecond)."""
    keep = np.ones(frame.n, dtype=np.bool_)
    if site is not None:
        if site not in frame.sites:
            return np.zeros(0, dtype=np.intp)
        keep &= frame.site_index == frame.sites.index(site)
    if state is not None:
        keep &= frame.state == STATES.index(state)
    if only_anomalous:
        # O(active anomalies), not O(fleet): look their rows up in the inventory's index
        index = row_index(frame.inventory)
        hit = np.zeros(frame.n, dtype=np.bool_)
        hit[[index[a] for a in anomalous if a in index]] = True
        keep &= hit
    return np.flatnonzero(keep)


_index_cache: tuple[Inventory, dict[str, int]] | None = None


def row_index(inventory: Inventory) -> dict[str, int]:
    """Appliance id -> row, built once per inventory (it changes only on reload)."""
    global _index_cache
    cached = _index_cache
    if cached is None or cached[0] is not inventory:
        cached = _index_cache = (inventory, inventory.index())
    return cached[1]


_STATE_NAMES = {int(s): s.name.lower() for s in ApplianceState}
_POLL_REASONS = {int(f): f.reason for f in PollFailure}
_SERVICE_NAMES = {int(s): s.name.lower() for s in ServiceStatus}


def appliances(
    frame: FleetFrame,
    rows: Sequence[int] | np.ndarray,
    anomalies: Mapping[str, Sequence[Anomaly]],
    result: DetectionResult | None,
) -> list[dict[str, Any]]:
    """The appliances of `rows` as the latest tick saw them, with their active anomalies.

    The page's arrays are turned into Python lists once (not cell by cell): a page of
    1,000 appliances x 12 metrics renders in a few milliseconds on the event loop.
    """
    idx = np.asarray(rows, dtype=np.intp)
    values = frame.values[idx].tolist()
    valid = frame.valid[idx].tolist()
    services = frame.service_status[idx].tolist()
    states, failures = frame.state[idx].tolist(), frame.failure[idx].tolist()
    uptimes = frame.uptime_s[idx].tolist()
    seq = None if result is None else result.seq
    out = []
    for k, row in enumerate(idx.tolist()):
        a = frame.inventory.appliances[row]
        metrics = {m: v for m, v, ok in zip(frame.metrics, values[k], valid[k], strict=True) if ok}
        svc = {
            name: _SERVICE_NAMES.get(code, str(code))
            for name, code in zip(frame.services, services[k], strict=True)
            if code != ServiceStatus.ABSENT
        }
        out.append({
            "id": a.id,
            "site": a.site,
            "labels": dict(a.labels),
            "state": _STATE_NAMES.get(states[k], "unknown"),
            "up": failures[k] == PollFailure.OK,
            "last_poll": _POLL_REASONS.get(failures[k], str(failures[k])),
            "uptime_s": uptimes[k] if math.isfinite(uptimes[k]) else None,
            "metrics": metrics,
            "services": svc,
            "anomalies": [anomaly_to_json(x) for x in anomalies.get(a.id, ())],
            "detection_seq": seq,
        })  # fmt: skip
    return out


def tick(frame: FleetFrame | None) -> dict[str, Any] | None:
    """Which tick a view of the fleet comes from."""
    if frame is None:
        return None
    return {"seq": frame.seq, "ts": frame.ts, "at": iso(frame.ts)}


def incident(
    inc: Incident, *, timeline: Iterable[TimelineEntry] | None = None, full: bool = False
) -> dict[str, Any]:
    """An incident; `full` adds its anomalies, members and triage (and the timeline if given)."""
    out: dict[str, Any] = {
        "id": inc.id,
        "status": str(inc.status),
        "scope": str(inc.scope),
        "subject": inc.subject,
        "kind": str(inc.kind),
        "family": inc.family,
        "site": inc.site,
        "metric": inc.metric,
        "severity": str(inc.severity),
        "opened_ts": inc.opened_ts,
        "opened_at": iso(inc.opened_ts),
        "last_seen_ts": inc.last_seen_ts,
        "resolved_ts": inc.resolved_ts,
        "active": inc.active,
        "flaps": inc.flaps,
        "parent": inc.parent,
        "silenced_by": inc.silenced_by,
        "acknowledged_by": inc.acknowledged_by,
        "members": len(inc.members),
        "labels": dict(inc.labels),
        "absorbed_total": inc.absorbed_total,
    }
    if full:
        out["first_seen_ts"] = inc.first_seen_ts
        out["reopened_ts"] = inc.reopened_ts
        out["quiet_since_ts"] = inc.quiet_since_ts
        out["members"] = list(inc.members)
        out["anomalies"] = [anomaly_to_json(a) for a in inc.anomalies]
        out["triage"] = [
            {
                "appliance": s.appliance,
                "metric": s.metric,
                "change_ts": _num(s.change_ts),
                "lead_s": _num(s.lead_s),
                "shift_sigma": _num(s.shift_sigma),
                "score": _num(s.score),
                "line": s.line,
            }
            for s in inc.triage
        ]
    if timeline is not None:
        out["timeline"] = [
            {"ts": e.ts, "at": iso(e.ts), "event": e.event, "detail": e.detail} for e in timeline
        ]
    return out


def execution(row: ExecutionRow, audit: Iterable[AuditRow] | None = None) -> dict[str, Any]:
    """A playbook execution (with its audit lines if given)."""
    out: dict[str, Any] = {
        "id": row.id,
        "playbook": row.playbook,
        "incident_id": row.incident_id,
        "subject": row.subject,
        "site": row.site,
        "status": row.status,
        "dry_run": row.dry_run,
        "started_ts": row.started_ts,
        "started_at": iso(row.started_ts),
        "ended_ts": row.ended_ts,
        "detail": row.detail,
    }
    if audit is not None:
        out["audit"] = [
            {"seq": a.seq, "ts": a.ts, "at": iso(a.ts), "event": a.event, "detail": a.detail}
            for a in audit
        ]
    return out


def silence(s: Silence, *, source: str) -> dict[str, Any]:
    """A silence; `source` is `config` or `runtime`."""
    out = s.to_json()
    del out["v"]
    out["source"] = source
    out["starts_at"] = iso(s.starts_ts)
    out["ends_at"] = iso(s.ends_ts)
    return out


def playbook(pb: CompiledPlaybook, breaker: str) -> dict[str, Any]:
    """A loaded playbook with its breaker state."""
    p = pb.playbook
    return {
        "name": p.name,
        "description": p.description,
        "mode": p.mode,
        "enabled": p.enabled,
        "manual": p.trigger.manual,
        "trigger": p.trigger.model_dump(mode="json", exclude_defaults=True),
        "steps": [s.label for s in pb.steps],
        "breaker": breaker,
        "file": f"{pb.file}:{pb.line}",
    }
