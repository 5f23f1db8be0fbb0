"""After a crash: where an execution the daemon left `running` stood, read from its audit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cdnops.remediate.actions import APPLIANCE_ACTIONS
from cdnops.store.db import AuditRow


def interrupted_at(timeline: Iterable[AuditRow]) -> dict[str, Any]:
    """The step it was in and whether an appliance action may have been carried out.

    `action_sent` is `yes` when the appliance accepted an action whose end was never
    seen, `maybe` when the request may have been on the wire (the step had started, no
    answer was recorded), `no` otherwise (dry runs, waits, verifications, between steps).
    """
    step = action = ""
    sent = "no"
    for row in timeline:
        if row.event == "step_started":
            step, action = str(row.detail.get("step", "")), str(row.detail.get("action", ""))
            sent = "maybe" if action in APPLIANCE_ACTIONS else "no"
        elif row.event == "step_retry":
            sent = "maybe" if action in APPLIANCE_ACTIONS else "no"
        elif row.event == "action_answer":
            sent = "yes"
        elif row.event in ("action_done", "action_not_sent", "step_finished"):
            sent = "no"
            if row.event == "step_finished":
                step = action = ""
        elif row.event == "guard" and not row.detail.get("ok", True):
            sent = "no"
    return {"step": step, "action": action, "action_sent": sent}
