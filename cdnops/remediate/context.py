"""What templates and conditions see: the incident and the appliance's live state."""

from __future__ import annotations

import math
from typing import Any

from cdnops.incidents.model import Incident
from cdnops.model import Appliance, ApplianceState, FleetFrame, PollFailure, ServiceStatus

_SERVICE = {s: s.name.lower() for s in ServiceStatus}
_STATE = {s: s.name.lower() for s in ApplianceState}


class FrameIndex:
    """A frame with its appliance id -> row map (built once per frame)."""

    def __init__(self, frame: FleetFrame) -> None:
        self.frame = frame
        self.rows = frame.inventory.index()

    def appliance(self, appliance_id: str) -> Appliance | None:
        """The inventory entry of an appliance, if the frame has it."""
        row = self.rows.get(appliance_id)
        return None if row is None else self.frame.inventory.appliances[row]

    def context(self, appliance_id: str) -> dict[str, Any] | None:
        """The appliance's live state as plain data, or None if it is not in the frame."""
        row = self.rows.get(appliance_id)
        if row is None:
            return None
        f = self.frame
        a = f.inventory.appliances[row]
        failure = PollFailure(int(f.failure[row]))
        uptime = float(f.uptime_s[row])
        return {
            "id": a.id,
            "site": a.site,
            "labels": dict(a.labels),
            "state": _STATE[ApplianceState(int(f.state[row]))],
            "reachable": failure is PollFailure.OK,
            "failure": failure.reason,
            "uptime_s": None if math.isnan(uptime) else uptime,
            "services": {
                name: _SERVICE[ServiceStatus(int(f.service_status[row, j]))]
                for j, name in enumerate(f.services)
            },
            "metrics": {
                name: float(f.values[row, j]) if f.valid[row, j] else None
                for j, name in enumerate(f.metrics)
            },
        }


def incident_context(inc: Incident) -> dict[str, Any]:
    """The incident as plain data (triage lines included)."""
    return {
        "id": inc.id,
        "scope": str(inc.scope),
        "subject": inc.subject,
        "kind": str(inc.kind),
        "family": inc.family,
        "site": inc.site,
        "metric": inc.metric,
        "severity": str(inc.severity),
        "labels": dict(inc.labels),
        "members": list(inc.members),
        "detectors": sorted({str(a.detector) for a in inc.anomalies}),
        "metrics": sorted({a.metric for a in inc.anomalies}),
        "explanations": [a.explanation for a in inc.anomalies],
        "triage": [s.line for s in inc.triage],
    }
