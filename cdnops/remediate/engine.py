"""The remediator: each tick, open incidents -> matching playbooks -> guards -> executions."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import aiohttp

from cdnops.appliance.client import ApplianceClient, SecretLike
from cdnops.config.remediate import RemediateConfig
from cdnops.incidents.model import Incident, Scope
from cdnops.incidents.silences import Silence, Silences
from cdnops.model import FleetFrame
from cdnops.remediate.audit import Audit, RemediationBus
from cdnops.remediate.guards import Guards, Verdict
from cdnops.remediate.loader import CompiledPlaybook, PlaybookSet
from cdnops.remediate.match import matching
from cdnops.remediate.recovery import interrupted_at
from cdnops.remediate.runner import ActionsClient, Execution, FrameFeed, Runner, RunnerDeps
from cdnops.remediate.schedule import PlaybookScheduler
from cdnops.remediate.subjects import scheduled_subjects, stand_in, subject_problem
from cdnops.remediate.templates import TemplateError
from cdnops.store.db import Store

log = logging.getLogger("cdnops.remediate")

# guards that block a whole playbook, not one subject: once one blocks a scheduled
# firing, the subjects after it are not tried
_PLAYBOOK_WIDE = ("breaker", "concurrency", "rate_limit")


class ManualTriggerError(ValueError):
    """A manual run was refused; the message tells the operator why."""


def subject_of(inc: Incident) -> str:
    """What an execution acts on: the appliance, the site, or `fleet`."""
    return inc.subject


class Remediator:
    """Owns the playbooks, the guards and the running executions.

    An async context manager: entering opens the appliance client and the HTTP session,
    marks executions a previous run left `running` as interrupted and starts the
    scheduler of scheduled playbooks; `shutdown` stops the scheduler, gives running
    executions a grace period, then cancels them.
    """

    def __init__(
        self,
        config: RemediateConfig,
        playbooks: PlaybookSet,
        store: Store,
        bus: RemediationBus,
        *,
        token: SecretLike | str = "",
        client: ActionsClient | None = None,
        silence: Callable[[Silence], None] | None = None,
        silences: Silences | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.playbooks = playbooks
        self.audit = Audit(store, bus, clock)
        self.guards = Guards(config, store, clock)
        self.feed = FrameFeed()
        self._token = token
        self._clock = clock
        self._deps = RunnerDeps(
            config, self.audit, self.guards, self.feed, client, None, silence, clock=clock
        )
        self.runner = Runner(self._deps)
        self.running: dict[str, tuple[Execution, asyncio.Task[str]]] = {}
        self._verdicts: dict[tuple[str, str], str] = {}
        self._stack = AsyncExitStack()
        self._idle = asyncio.Event()
        self._idle.set()
        self._silences = silences  # what scheduled and manual runs are checked against
        self._wide: list[Incident] = []  # open site and fleet incidents as of the last tick
        self.scheduler = PlaybookScheduler(self._scheduled_firing)

    async def __aenter__(self) -> Remediator:
        if self._deps.client is None:
            self._deps.client = await self._stack.enter_async_context(
                ApplianceClient(self._token, timeout_s=5.0)
            )
        self._deps.http = await self._stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0))
        )
        self._interrupted_by_restart()
        self.scheduler.start(self.playbooks.playbooks.values())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown(0.0)
        await self._stack.aclose()

    def _interrupted_by_restart(self) -> None:
        """Executions a killed daemon left `running`: abandoned, never resumed.

        Nothing tells whether the action in flight (a reboot, say) was carried out, so
        none is sent again: the execution ends `interrupted`, its audit says which step
        it was in and whether an action may have been sent, and its (playbook, subject)
        cooldown restarts from now, so an incident still open does not start it again
        at once. Breakers are untouched (an interrupted run proves nothing).
        """
        for row in self.audit.store.executions(status="running"):
            where = interrupted_at(self.audit.timeline(row.id))
            self.runner.hold(self.playbooks.playbooks.get(row.playbook), row.subject, row.playbook)
            done = dataclasses.replace(row, status="interrupted", ended_ts=self._clock())
            self.audit.record(
                "execution_interrupted", playbook=row.playbook, incident_id=row.incident_id,
                subject=row.subject, execution_id=row.id, execution=done,
                reason="the daemon stopped while it ran; not resumed", **where,
            )  # fmt: skip

    def replace_playbooks(self, playbooks: PlaybookSet) -> None:
        """Swap in a new set (running executions finish with the playbook they started)."""
        self.playbooks = playbooks
        self._verdicts.clear()
        self.scheduler.sync(playbooks.playbooks.values())

    def reset_breaker(self, playbook: str, *, by: str = "operator") -> bool:
        """Close a playbook's breaker; returns whether it was open or half-open."""
        reset = self.guards.reset_breaker(playbook)
        if reset:
            self.audit.record("breaker_reset", playbook=playbook, incident_id="", subject="", by=by)
        return reset

    def tick(
        self, frame: FleetFrame, open_incidents: Iterable[Incident], releasable: Iterable[Incident]
    ) -> list[Execution]:
        """Feed one tick; returns the executions started."""
        self.feed.push(frame)
        self.audit.bus.set_breakers(
            {name: self.guards.breaker_state(name) for name in self.playbooks.playbooks}
        )
        released = {i.id for i in releasable}
        started = []
        still_open = set()
        incidents = list(open_incidents)
        self._wide = [i for i in incidents if i.scope is not Scope.APPLIANCE]
        for inc in incidents:
            for pb in matching(self.playbooks.playbooks.values(), inc):
                still_open.add((inc.id, pb.name))
                ex = self._decide(pb, inc, released=inc.id in released)
                if ex is not None:
                    started.append(ex)
        for key in self._verdicts.keys() - still_open:
            del self._verdicts[key]
        return started

    def verdicts(self, pb: CompiledPlaybook, inc: Incident) -> list[Verdict]:
        """Every guard's verdict on running `pb` for `inc` now, in the order they apply."""
        subject = subject_of(inc)
        busy = any(ex.subject == subject for ex, _ in self.running.values())
        n = len(self.running)
        return [
            Verdict("inhibition", inc.parent is None, f"inhibited by {inc.parent}"),
            Verdict("silence", inc.silenced_by is None, f"silenced by {inc.silenced_by}"),
            self._conditions(pb, inc),
            self.guards.breaker(pb.name),
            Verdict("appliance_busy", not busy, f"another execution runs on {subject}"),
            self.guards.cooldown(pb.name, subject),
            Verdict("concurrency", n < self.config.max_concurrent, f"{n} executions running"),
            self.guards.rate(pb.name),
        ]

    def _conditions(self, pb: CompiledPlaybook, inc: Incident) -> Verdict:
        ctx = self.runner.context(_probe(pb, inc, self._clock()))
        for expr in pb.conditions:
            try:
                if not expr.evaluate(ctx):
                    return Verdict("conditions", False, f"{expr.source} is false")
            except TemplateError as exc:
                return Verdict("conditions", False, str(exc))
        return Verdict("conditions", True)

    def _decide(self, pb: CompiledPlaybook, inc: Incident, *, released: bool) -> Execution | None:
        if not released and inc.parent is None and inc.silenced_by is None:
            return None  # waiting for group_wait: nothing decided yet
        if not inc.active and released:
            return None  # quiet: what triggered it is not happening now
        if any(ex.pb is pb and ex.incident.id == inc.id for ex, _ in self.running.values()):
            return None  # already on it
        blocked = next((v for v in self.verdicts(pb, inc) if not v.ok), None)
        key = (inc.id, pb.name)
        if blocked is not None:
            if self._verdicts.get(key) != blocked.guard:
                self._verdicts[key] = blocked.guard
                self.audit.record(
                    "skipped", playbook=pb.name, incident_id=inc.id, subject=subject_of(inc),
                    guard=blocked.guard, reason=blocked.reason,
                )  # fmt: skip
            return None
        self._verdicts[key] = "started"
        return self._start(pb, inc)

    def _start(self, pb: CompiledPlaybook, inc: Incident, **detail: Any) -> Execution:
        dry = self.config.dry_run or pb.playbook.mode == "dry_run"
        ex = Execution(pb, inc.snapshot(), subject_of(inc), dry, self._clock())
        self.guards.note_start(pb.name)
        self.audit.record(
            "matched", playbook=pb.name, incident_id=inc.id, subject=ex.subject,
            execution_id=ex.id, kind=str(inc.kind), metric=inc.metric, **detail,
        )  # fmt: skip
        task = asyncio.create_task(self._run(ex), name=f"cdnops.remediate[{pb.name}/{ex.subject}]")
        self.running[ex.id] = (ex, task)
        self._idle.clear()
        return ex

    # -- runs without an incident ----------------------------------------------------
    async def _scheduled_firing(self, name: str) -> None:
        """What the scheduler awaits on the loop; a bug here must not stop later firings."""
        try:
            self.run_scheduled(name)
        except Exception:
            log.exception("scheduled run of %s failed", name)

    def run_scheduled(self, name: str) -> list[Execution]:
        """One firing of a scheduled playbook; returns the executions started.

        Each appliance (site) the trigger selects in the latest frame is a subject of its
        own execution, through every guard. Subjects whose conditions are false are only
        counted (the usual "nothing to do"); other skips are audited one by one.
        """
        pb = self.playbooks.playbooks.get(name)
        if pb is None or not pb.playbook.enabled or pb.playbook.trigger.schedule is None:
            return []  # changed by a reload since the job was due
        fi = self.feed.latest
        if fi is None:
            self._fired(name, 0, [], {}, reason="no poll has completed yet")
            return []
        subjects = scheduled_subjects(pb, fi)
        started: list[Execution] = []
        skipped: dict[str, int] = {}
        for i, subject in enumerate(subjects):
            inc = stand_in(fi, subject, "schedule", self._clock(), open_incidents=self._wide,
                           silences=self._silences)  # fmt: skip
            blocked = self._blocked(pb, inc)
            if blocked is None:
                started.append(self._start(pb, inc, trigger="schedule"))
                continue
            skipped[blocked.guard] = skipped.get(blocked.guard, 0) + 1
            wide = blocked.guard in _PLAYBOOK_WIDE
            if blocked.guard != "conditions":
                rest = {"not_tried": len(subjects) - i - 1} if wide else {}
                self._skip(pb, inc, blocked, trigger="schedule", **rest)
            if wide:
                break
        self._fired(name, len(subjects), started, skipped)
        return started

    def _fired(
        self, name: str, selected: int, started: list[Execution], skipped: dict[str, int],
        **detail: Any,
    ) -> None:  # fmt: skip
        self.audit.record(
            "schedule_fired", playbook=name, incident_id="", subject="", selected=selected,
            started=len(started), skipped=skipped, **detail,
        )  # fmt: skip

    def run_manual(self, playbook: str, subject: str, *, by: str, reason: str = "") -> Execution:
        """An operator's run of `playbook` on `subject` (an appliance, a site or `fleet`).

        Any enabled playbook may be run by hand, on a subject its trigger's scope, site and
        labels allow; its conditions and every guard still apply, and `by` is audited.

        Raises:
            ManualTriggerError: the playbook or subject is unknown, or a guard blocks it.
        """
        pb = self.playbooks.playbooks.get(playbook)
        if pb is None:
            known = ", ".join(sorted(self.playbooks.playbooks)) or "none"
            raise ManualTriggerError(f'unknown playbook "{playbook}" (loaded: {known})')
        if not pb.playbook.enabled:
            raise ManualTriggerError(f'playbook "{playbook}" is disabled (enabled: false)')
        fi = self.feed.latest
        if fi is None:
            raise ManualTriggerError("no poll has completed yet; try again in a few seconds")
        if (problem := subject_problem(pb, fi, subject)) is not None:
            raise ManualTriggerError(problem)
        inc = stand_in(fi, subject, "manual", self._clock(), open_incidents=self._wide,
                       silences=self._silences)  # fmt: skip
        asked: dict[str, Any] = {"trigger": "manual", "by": by, "request_reason": reason}
        blocked = self._blocked(pb, inc)
        if blocked is not None:
            self._skip(pb, inc, blocked, **asked)
            raise ManualTriggerError(
                f'playbook "{playbook}" on {subject} is blocked by {blocked.guard}: '
                f"{blocked.reason}"
            )
        return self._start(pb, inc, **asked)

    def _blocked(self, pb: CompiledPlaybook, inc: Incident) -> Verdict | None:
        return next((v for v in self.verdicts(pb, inc) if not v.ok), None)

    def _skip(self, pb: CompiledPlaybook, inc: Incident, v: Verdict, **detail: Any) -> None:
        self.audit.record(
            "skipped", playbook=pb.name, incident_id=inc.id, subject=subject_of(inc),
            guard=v.guard, reason=v.reason, **detail,
        )  # fmt: skip

    async def _run(self, ex: Execution) -> str:
        try:
            return await self.runner.run(ex)
        except asyncio.CancelledError:
            raise
        except Exception:  # an execution's bug must not take the daemon down
            log.exception("execution %s of %s failed unexpectedly", ex.id, ex.pb.name)
            self.runner.finish(ex, "failed")
            return "failed"
        finally:
            self.running.pop(ex.id, None)
            if not self.running:
                self._idle.set()

    async def wait_idle(self, timeout_s: float) -> None:
        """Until no execution runs (TimeoutError past `timeout_s`)."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def shutdown(self, grace_s: float) -> tuple[int, int]:
        """Let running executions finish within `grace_s`, cancel the rest.

        Returns (finished, cancelled).
        """
        self.scheduler.stop()
        tasks = [t for _, t in self.running.values()]
        if not tasks:
            return 0, 0
        done, pending = (
            await asyncio.wait(tasks, timeout=grace_s) if grace_s > 0 else (set(), set(tasks))
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.info(
            "remediation stopped: %d executions finished, %d interrupted", len(done), len(pending)
        )
        return len(done), len(pending)


def _probe(pb: CompiledPlaybook, inc: Incident, now: float) -> Execution:
    """A not-started execution, to build the context conditions see."""
    return Execution(pb, inc, subject_of(inc), True, now, id="")
