"""Remediation actions: validation, the 202/409/400 answers, and their delayed effects."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from cdnops.sim.effects import Fault, FaultStatus
from cdnops.sim.faults import SERVICES
from cdnops.sim.fleet import STATE_DRAINED, STATE_DRAINING, STATE_NAMES, STATE_SERVING

if TYPE_CHECKING:
    from cdnops.sim.engine import Engine

# Realistic durations in seconds, multiplied by the spec's `action_delay_scale`.
DELAYS_S: dict[str, float] = {
    "restart_service": 4.0,
    "purge_cache": 8.0,
    "drain": 30.0,
    "undrain": 5.0,
    "reboot": 60.0,
    "collect_diagnostics": 15.0,
}
ACTIONS: tuple[str, ...] = tuple(DELAYS_S)
REBOOT_FIXES = {"service_crash", "memory_leak", "hung"}


class ActionRefusedError(Exception):
    """The request is answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ActionRun:
    """One accepted action."""

    action_id: str
    action: str
    row: int
    body: dict[str, object]
    status: str = "running"
    detail: str = ""
    handle: asyncio.TimerHandle | None = None

    def as_dict(self) -> dict[str, object]:
        """The contract's status body."""
        return {
            "action_id": self.action_id,
            "action": self.action,
            "status": self.status,
            "detail": self.detail,
        }


def parse_body(action: str, raw: bytes) -> dict[str, object]:
    """The JSON object body of an action (empty means `{}`)."""
    if action not in DELAYS_S:
        raise ActionRefusedError(400, f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ActionRefusedError(400, f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ActionRefusedError(400, "body must be a JSON object")
    if action == "restart_service" and body.get("service") not in SERVICES:
        raise ActionRefusedError(
            400, f"restart_service needs service: one of {', '.join(SERVICES)}"
        )
    return body


class ActionDesk:
    """Accepts actions per appliance, one at a time, and applies them when they finish."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.runs: dict[str, ActionRun] = {}
        self.busy: dict[int, ActionRun] = {}
        self._ids = itertools.count(1)

    def submit(self, row: int, action: str, raw: bytes, *, authorized: bool) -> tuple[int, object]:
        """Answer a POST: status and JSON document; every answer goes to the truth log."""
        body: object = raw.decode("utf-8", "replace")
        try:
            if not authorized:
                raise ActionRefusedError(401, "missing or wrong bearer token")
            body = parsed = parse_body(action, raw)
            self._check_state(row, action)
        except ActionRefusedError as exc:
            self._received(row, action, body, None, exc.status)
            return exc.status, {"error": str(exc)}
        run = ActionRun(f"act-{next(self._ids):06d}", action, row, parsed)
        self.runs[run.action_id] = run
        self.busy[row] = run
        self._received(row, action, parsed, run.action_id, 202)
        self._start(run)
        return 202, {"action_id": run.action_id, "status": "accepted"}

    def status(self, row: int, action_id: str) -> ActionRun | None:
        """An action of this appliance, or None."""
        run = self.runs.get(action_id)
        return run if run is not None and run.row == row else None

    def close(self) -> None:
        """Cancel the timers of running actions (the simulator is stopping)."""
        for run in self.busy.values():
            if run.handle is not None:
                run.handle.cancel()

    def _check_state(self, row: int, action: str) -> None:
        running = self.busy.get(row)
        if running is not None:
            raise ActionRefusedError(
                409, f"action {running.action_id} ({running.action}) is still running"
            )
        state = int(self._engine.fleet.state[row])
        if action == "drain" and state != STATE_SERVING:
            raise ActionRefusedError(409, f"appliance is {STATE_NAMES[state]}, not serving")
        if action == "undrain" and state == STATE_SERVING:
            raise ActionRefusedError(409, "appliance is already serving")
        if action == "drain" and self._last_serving(row):
            raise ActionRefusedError(
                409, "refusing to drain the last serving appliance of its site"
            )

    def _last_serving(self, row: int) -> bool:
        fleet = self._engine.fleet
        peers = self._engine.topology.site_rows[self._engine.topology.sites[fleet.site_index[row]]]
        serving = (fleet.state[peers] == STATE_SERVING) & ~fleet.down[peers]
        return int(serving.sum()) <= 1

    def _start(self, run: ActionRun) -> None:
        engine, fleet, row = self._engine, self._engine.fleet, run.row
        delay = DELAYS_S[run.action] * engine.spec.action_delay_scale
        if run.action == "drain":
            fleet.state[row] = STATE_DRAINING
            fleet.drain_from[row], fleet.drain_for[row] = engine.clock.real(), max(delay, 1e-3)
        elif run.action == "reboot":
            fleet.down[row] = True
            engine.down.add(row)
            engine.truth.add("reboot_started", engine.clock.sim(), appliance=self._id(row))
        run.handle = asyncio.get_running_loop().call_later(delay, self._finish, run)
        engine.refresh(force=True)

    def _finish(self, run: ActionRun) -> None:
        engine, row = self._engine, run.row
        sim = engine.clock.sim()
        fixed = self._apply(run, sim)
        if run.status == "running":
            run.status = "succeeded"
        del self.busy[row]
        for fault in fixed:
            engine.truth.add(
                "fault_fixed",
                sim,
                fault_id=fault.id,
                kind=fault.spec.kind,
                target=fault.spec.target,
                appliances=[self._id(row)],
                by_action=run.action_id,
                recurs=fault.spec.kind == "service_crash" and fault.spec.param("recur") is True,
            )
        engine.modes = engine.faults.request_modes()
        engine.truth.add(
            "action_finished",
            sim,
            appliance=self._id(row),
            action=run.action,
            action_id=run.action_id,
            status=run.status,
            detail=run.detail,
            fixed=[f.id for f in fixed],
        )
        engine.refresh(force=True)

    def _apply(self, run: ActionRun, sim: float) -> list[Fault]:
        """The effect of a finished action; returns the faults it repaired."""
        engine, fleet, row = self._engine, self._engine.fleet, run.row
        if run.action == "restart_service":
            return self._restart(run, sim)
        if run.action == "purge_cache":
            fleet.purge_sim[row] = sim
            run.detail = "cache purged; the hit ratio recovers as it refills"
            return engine.faults.fix(row, {"cache_corruption"}, sim)
        if run.action == "reboot":
            fleet.reboot_done(row, sim)
            engine.down.discard(row)
            engine.truth.add("reboot_finished", sim, appliance=self._id(row))
            run.detail = "rebooted"
            return engine.faults.fix(row, REBOOT_FIXES, sim)
        if run.action in ("drain", "undrain"):
            fleet.state[row] = STATE_DRAINED if run.action == "drain" else STATE_SERVING
            run.detail = f"appliance {STATE_NAMES[fleet.state[row]]}"
        else:
            run.detail = f"diagnostics bundle diag-{run.action_id}.tar.gz collected"
        return []

    def _restart(self, run: ActionRun, sim: float) -> list[Fault]:
        service = str(run.body["service"])
        book = self._engine.faults
        for fault in book:
            if (
                fault.status is FaultStatus.ACTIVE
                and fault.spec.kind == "service_crash"
                and fault.spec.param("service") == service
                and fault.spec.param("restart_fails") is True
                and bool(fault.live[fault.rows == run.row].any())
            ):
                run.status, run.detail = "failed", f"{service} did not come back up"
                return []
        kinds = {"service_crash", "memory_leak"} if service == "nginx" else {"service_crash"}
        run.detail = f"{service} restarted"
        return book.fix(run.row, kinds, sim, service=service)

    def _received(
        self, row: int, action: str, body: object, action_id: str | None, status: int
    ) -> None:
        self._engine.truth.add(
            "action_received",
            self._engine.clock.sim(),
            appliance=self._id(row),
            action=action,
            body=body,
            action_id=action_id,
            answer_status=status,
        )

    def _id(self, row: int) -> str:
        return self._engine.topology.ids[row]
