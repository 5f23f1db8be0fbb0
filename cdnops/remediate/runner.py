"""One playbook execution: steps in order, retries, verification, on_failure, dry run."""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from pydantic import BaseModel, ValidationError

from cdnops.appliance.client import ActionStatus
from cdnops.config.remediate import RemediateConfig
from cdnops.errors import ApplianceError
from cdnops.incidents.model import Incident, Scope
from cdnops.incidents.silences import Silence
from cdnops.model import Appliance, FleetFrame, PollFailure
from cdnops.remediate.actions import (
    EscalateParams,
    HttpParams,
    Kind,
    NotifyParams,
    SilenceParams,
    VerifyParams,
    WaitParams,
)
from cdnops.remediate.audit import Audit
from cdnops.remediate.context import FrameIndex, incident_context
from cdnops.remediate.guards import Guards
from cdnops.remediate.loader import CompiledPlaybook, CompiledStep
from cdnops.remediate.templates import TemplateError
from cdnops.store.db import ExecutionRow


class ActionsClient(Protocol):
    """The appliance contract's actions (`cdnops.appliance.client.ApplianceClient`)."""

    async def start_action(
        self, appliance: Appliance, action: str, body: Mapping[str, object]
    ) -> str: ...

    async def wait_action(
        self, appliance: Appliance, action_id: str, *, timeout_s: float, poll_interval_s: float
    ) -> ActionStatus: ...


class FrameFeed:
    """The latest frame, and a way to await the next one (verification re-polls through it)."""

    def __init__(self) -> None:
        self.latest: FrameIndex | None = None
        self._next = asyncio.Event()

    def push(self, frame: FleetFrame) -> None:
        """A new tick's frame: wakes every waiter."""
        self.latest = FrameIndex(frame)
        self._next.set()
        self._next = asyncio.Event()

    async def next(self, timeout_s: float) -> FrameIndex | None:
        """The next frame, or None if none came within `timeout_s`."""
        try:
            await asyncio.wait_for(self._next.wait(), timeout_s)
        except TimeoutError:
            return None
        return self.latest


class Outcome(enum.Enum):
    """How a step ended."""

    OK = "ok"
    FAILED = "failed"
    BLOCKED = "blocked"  # a guard refused the action
    STOP = "stop"  # the execution ends here, successfully


@dataclass
class Execution:
    """One run of one playbook for one incident on one subject."""

    pb: CompiledPlaybook
    incident: Incident
    subject: str  # the appliance, or the site (fleet) of a site (fleet) playbook
    dry_run: bool
    started_ts: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    status: str = "running"
    holds_capacity: bool = False

    @property
    def on_appliance(self) -> bool:
        """Whether the subject is an appliance."""
        return self.incident.scope is Scope.APPLIANCE

    def row(self, ended_ts: float | None = None, detail: str = "") -> ExecutionRow:
        """The execution as stored."""
        return ExecutionRow(
            self.id, self.pb.name, self.incident.id, self.subject, self.incident.site,
            self.status, self.dry_run, self.started_ts, ended_ts, detail,
        )  # fmt: skip


@dataclass
class RunnerDeps:
    """What executions share."""

    config: RemediateConfig
    audit: Audit
    guards: Guards
    feed: FrameFeed
    client: ActionsClient | None
    http: aiohttp.ClientSession | None
    silence: Callable[[Silence], None] | None
    reserved: set[str] = field(default_factory=set)  # appliances taken out by executions
    clock: Callable[[], float] = time.time


class Runner:
    """Runs executions; every decision goes through the audit."""

    def __init__(self, deps: RunnerDeps) -> None:
        self.d = deps

    def record(
        self, ex: Execution, event: str, *, row: ExecutionRow | None = None, **detail: Any
    ) -> None:
        """Audit one decision of an execution (and save its row in the same transaction)."""
        self.d.audit.record(
            event,
            playbook=ex.pb.name,
            incident_id=ex.incident.id,
            subject=ex.subject,
            execution_id=ex.id,
            execution=row,
            **detail,
        )

    async def run(self, ex: Execution) -> str:
        """Run to the end; returns the final status (the store has it too).

        The cooldown starts before the first step and again at the end: a daemon killed
        mid-execution finds it in the store, so it cannot run the playbook there again at
        once (and send a second reboot) after a restart.
        """
        self.hold(ex.pb, ex.subject)
        self.record(ex, "execution_started", row=ex.row(), dry_run=ex.dry_run)
        try:
            status = await self._steps(ex, ex.pb.steps)
            if status != "succeeded" and ex.pb.on_failure:
                self.record(ex, "on_failure_started", status=status)
                await self._steps(ex, ex.pb.on_failure)
        except asyncio.CancelledError:
            self.finish(ex, "interrupted")
            raise
        self.finish(ex, status)
        return status

    def finish(self, ex: Execution, status: str) -> None:
        """Release what the execution holds, start the cooldown, count it in the breaker."""
        ex.status = status
        if ex.holds_capacity:
            self.d.reserved.discard(ex.subject)
        self.hold(ex.pb, ex.subject)
        row = ex.row(self.d.clock(), status)
        self.record(ex, "execution_finished", row=row, status=status, dry_run=ex.dry_run)
        if ex.dry_run or status not in ("succeeded", "failed"):
            self.d.guards.release_probe(ex.pb.name)
            return
        change = self.d.guards.record_result(ex.pb.name, ok=status == "succeeded")
        if change is not None:
            state = self.d.guards.breaker_state(ex.pb.name)
            self.record(ex, f"breaker_{change}", state=state)

    def hold(self, pb: CompiledPlaybook | None, subject: str, playbook: str = "") -> None:
        """(Re)start the cooldown of a playbook on a subject, from now.

        `pb` is None for a playbook no longer loaded (named by `playbook`): the config's
        default cooldown applies.
        """
        own = pb.playbook.cooldown_s if pb is not None else None
        seconds = self.d.config.cooldown_s if own is None else own
        self.d.guards.start_cooldown(pb.name if pb is not None else playbook, subject, seconds)

    async def _steps(self, ex: Execution, steps: tuple[CompiledStep, ...]) -> str:
        for cs in steps:
            outcome = await self._step(ex, cs)
            if outcome is Outcome.STOP:
                return "succeeded"
            if outcome in (Outcome.FAILED, Outcome.BLOCKED) and not cs.step.continue_on_failure:
                return "failed" if outcome is Outcome.FAILED else "blocked"
        return "succeeded"

    def context(self, ex: Execution) -> dict[str, Any]:
        """Templates' and conditions' view: the incident and the appliance as of now."""
        fi = self.d.feed.latest
        live = fi.context(ex.subject) if fi is not None and ex.on_appliance else None
        return {
            "incident": incident_context(ex.incident),
            "appliance": live or {},
            "playbook": {"name": ex.pb.name, "dry_run": ex.dry_run},
            "now": self.d.clock(),
        }

    async def _step(self, ex: Execution, cs: CompiledStep) -> Outcome:
        ctx = self.context(ex)
        if cs.when is not None:
            try:
                go = cs.when.evaluate(ctx)
            except TemplateError as exc:
                go, why = False, str(exc)
            else:
                why = "when is false"
            if not go:
                self.record(ex, "step_skipped", step=cs.label, reason=why)
                return Outcome.OK
        self.record(ex, "step_started", step=cs.label, action=cs.spec.name)
        outcome, detail = await self._attempts(ex, cs, ctx)
        self.record(ex, "step_finished", step=cs.label, outcome=outcome.value, **detail)
        return outcome

    async def _attempts(
        self, ex: Execution, cs: CompiledStep, ctx: dict[str, Any]
    ) -> tuple[Outcome, dict[str, Any]]:
        step = cs.step
        timeout_s = step.timeout_s or self.d.config.action_timeout_s
        for attempt in range(step.retries + 1):
            try:
                async with asyncio.timeout(timeout_s):
                    outcome, detail = await self._attempt(ex, cs, self._params(cs, ctx))
            except TimeoutError:
                outcome, detail = Outcome.FAILED, {"error": f"timed out after {timeout_s:g}s"}
            except (ApplianceError, TemplateError, ValidationError, aiohttp.ClientError) as exc:
                outcome, detail = Outcome.FAILED, {"error": str(exc)}
            if outcome is not Outcome.FAILED or detail.pop("final", False):
                return outcome, detail
            if attempt < step.retries:
                delay = step.backoff_s * 2**attempt
                self.record(ex, "step_retry", step=cs.label, attempt=attempt + 1, delay_s=delay)
                await asyncio.sleep(delay)
                ctx = self.context(ex)
        return outcome, detail

    def _params(self, cs: CompiledStep, ctx: dict[str, Any]) -> BaseModel:
        if not cs.templates:
            return cs.params
        raw = {k: dict(v) if isinstance(v, dict) else v for k, v in cs.step.params.items()}
        for path, template in cs.templates.items():
            target = raw
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = template.render(ctx)
        return cs.spec.params.model_validate(raw)

    async def _attempt(
        self, ex: Execution, cs: CompiledStep, params: BaseModel
    ) -> tuple[Outcome, dict[str, Any]]:
        if cs.spec.kind is Kind.APPLIANCE:
            return await self._appliance_action(ex, cs, params)
        if cs.spec.stops:
            return Outcome.STOP, {}
        if isinstance(params, VerifyParams):
            return await self._verify(ex, cs, params)
        if isinstance(params, WaitParams):
            if not ex.dry_run:
                await asyncio.sleep(params.seconds)
            return Outcome.OK, {}
        return (
            self._builtin(ex, params)
            if not isinstance(params, HttpParams)
            else (await self._http(ex, params))
        )

    def _builtin(self, ex: Execution, params: BaseModel) -> tuple[Outcome, dict[str, Any]]:
        dry: dict[str, Any] = {"dry_run": True} if ex.dry_run else {}
        if isinstance(params, NotifyParams):
            self.record(ex, "notified", message=params.message, **dry)
        elif isinstance(params, EscalateParams):
            inc = ex.incident
            triage = [s.line for s in inc.triage]
            explanations = [a.explanation for a in inc.anomalies]
            self.record(
                ex, "escalated", reason=params.reason, triage=triage,
                explanations=explanations, **dry,
            )  # fmt: skip
        elif isinstance(params, SilenceParams):
            return self._silence(ex, params)
        return Outcome.OK, {}

    def _silence(self, ex: Execution, params: SilenceParams) -> tuple[Outcome, dict[str, Any]]:
        if self.d.silence is None:
            return Outcome.FAILED, {"error": "silences are not available", "final": True}
        now = self.d.clock()
        on_site = ex.incident.scope is Scope.SITE
        silence = Silence(
            id=f"remediation-{ex.id}",
            starts_ts=now,
            ends_ts=now + params.duration_s,
            comment=params.comment,
            appliance=ex.subject if ex.on_appliance else None,
            site=ex.incident.site if on_site else None,
        )
        if ex.dry_run:
            return Outcome.OK, {"dry_run": True, "silence": silence.id}
        self.d.silence(silence)
        return Outcome.OK, {"silence": silence.id, "until_ts": silence.ends_ts}

    async def _http(self, ex: Execution, params: HttpParams) -> tuple[Outcome, dict[str, Any]]:
        if not any(params.url.startswith(prefix) for prefix in self.d.config.http_allow):
            error = f"URL {params.url} is not allow-listed (remediation.http_allow)"
            return Outcome.BLOCKED, {"blocked_by": "http_allow", "error": error}
        if ex.dry_run:
            return Outcome.OK, {"dry_run": True, "url": params.url}
        if self.d.http is None:
            return Outcome.FAILED, {"error": "no HTTP session", "final": True}
        async with self.d.http.request(params.method, params.url, json=params.body) as resp:
            status = resp.status
        outcome = Outcome.OK if status < 400 else Outcome.FAILED
        return outcome, {"url": params.url, "http_status": status}

    async def _appliance_action(
        self, ex: Execution, cs: CompiledStep, params: BaseModel
    ) -> tuple[Outcome, dict[str, Any]]:
        fi = self.d.feed.latest
        appliance = fi.appliance(ex.subject) if fi is not None else None
        if fi is None or appliance is None:
            return Outcome.FAILED, {"error": f"appliance {ex.subject} is not in the inventory"}
        name = cs.spec.name
        if cs.spec.removes_capacity and not ex.holds_capacity:
            verdict = self.d.guards.capacity(fi.frame, ex.subject, self.d.reserved)
            self.record(ex, "guard", guard="capacity", ok=verdict.ok, reason=verdict.reason,
                        action=name)  # fmt: skip
            if not verdict.ok:
                return Outcome.BLOCKED, {"blocked_by": "capacity", "reason": verdict.reason}
            self.d.reserved.add(ex.subject)
            ex.holds_capacity = True
        body = params.model_dump()
        if ex.dry_run:
            self.record(ex, "action_not_sent", action=name, body=body, dry_run=True)
            return Outcome.OK, {"dry_run": True}
        timeout_s = cs.step.timeout_s or self.d.config.action_timeout_s
        return await self._send(ex, appliance, name, body, timeout_s)

    async def _send(
        self, ex: Execution, appliance: Appliance, name: str, body: dict[str, Any], timeout_s: float
    ) -> tuple[Outcome, dict[str, Any]]:
        if self.d.client is None:
            return Outcome.FAILED, {"error": "no appliance client", "final": True}
        action_id = await self.d.client.start_action(appliance, name, body)
        self.record(ex, "action_answer", action=name, body=body, action_id=action_id,
                    answer="accepted")  # fmt: skip
        status = await self.d.client.wait_action(
            appliance, action_id, timeout_s=timeout_s,
            poll_interval_s=self.d.config.action_poll_interval_s,
        )  # fmt: skip
        self.record(ex, "action_done", action=name, action_id=action_id, status=status.status,
                    detail=status.detail)  # fmt: skip
        ok = status.status == "succeeded"
        return (Outcome.OK if ok else Outcome.FAILED), {"action_status": status.status}

    async def _verify(
        self, ex: Execution, cs: CompiledStep, params: VerifyParams
    ) -> tuple[Outcome, dict[str, Any]]:
        if ex.dry_run or cs.condition is None:
            return Outcome.OK, {"dry_run": True, "condition": params.condition}
        deadline = time.monotonic() + params.within_s
        held_since: float | None = None
        error = ""
        while (left := deadline - time.monotonic()) > 0:
            fi = await self.d.feed.next(left)  # only frames polled after the step started
            if fi is None:
                break
            row = fi.rows.get(ex.subject)
            if row is not None and fi.frame.failure[row] == PollFailure.NOT_POLLED:
                # no answer completed in this tick (a poll across the boundary lands in the
                # next one): no news about the condition, so a hold is not broken by it
                continue
            try:
                holds = cs.condition.evaluate(self.context(ex))
            except TemplateError as exc:
                holds, error = False, str(exc)
            if not holds:
                held_since = None
                continue
            held_since = fi.frame.ts if held_since is None else held_since
            if fi.frame.ts - held_since >= params.hold_s:
                self.record(ex, "verified", condition=params.condition, ok=True)
                return (Outcome.STOP if params.on_ok == "stop" else Outcome.OK), {"verified": True}
        self.record(ex, "verified", condition=params.condition, ok=False, error=error)
        if params.on_fail == "continue":
            return Outcome.OK, {"verified": False}
        return Outcome.FAILED, {"verified": False, "final": True}
