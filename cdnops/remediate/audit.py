"""The remediation audit: every decision persisted in the store and published on a bus."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from cdnops.errors import StoreError
from cdnops.store.db import AuditRow, ExecutionRow, Store

log = logging.getLogger("cdnops.remediate")


@dataclass(frozen=True, slots=True)
class RemediationEvent:
    """One decision, as published on the `RemediationBus`."""

    ts: float
    event: str  # matched, skipped, execution_started, step_started, action_answer, ...
    playbook: str
    incident_id: str
    subject: str
    execution_id: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The one log line of this event."""
        parts = [f"remediation {self.event}", f"playbook={self.playbook}"]
        parts += [f"subject={self.subject}", f"incident={self.incident_id}"]
        if self.execution_id:
            parts.append(f"execution={self.execution_id}")
        parts += [f"{k}={v!r}" for k, v in self.detail.items() if k != "triage"]
        return " ".join(parts)


Subscriber = Callable[[RemediationEvent], None]
BREAKER_STATES = ("closed", "open", "half_open")


class RemediationBus:
    """Synchronous fan-out of remediation events, a sibling of the incident EventBus."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._subscribers: list[Subscriber] = []
        self._count = Counter(
            "cdnops_remediation_events",
            "Remediation decisions by playbook and event.",
            ("playbook", "event"),
            registry=registry,
        )
        self._breakers = Gauge(
            "cdnops_remediation_breaker_state",
            "1 for the state each loaded playbook's circuit breaker is in, 0 for the others.",
            ("playbook", "state"),
            registry=registry,
        )
        self._breaker_states: dict[str, str] = {}

    def set_breakers(self, states: Mapping[str, str]) -> None:
        """Export each playbook's breaker state (closed, open, half_open); playbooks no
        longer loaded are dropped. Only changes are written: this runs every tick."""
        for playbook in self._breaker_states.keys() - states.keys():
            for state in BREAKER_STATES:
                self._breakers.remove(playbook, state)
            del self._breaker_states[playbook]
        for playbook, current in states.items():
            if self._breaker_states.get(playbook) != current:
                for state in BREAKER_STATES:
                    self._breakers.labels(playbook, state).set(1 if state == current else 0)
                self._breaker_states[playbook] = current

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` for every later event; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def publish(self, event: RemediationEvent) -> None:
        """Log, count and hand the event to every subscriber."""
        log.info(event.line())
        self._count.labels(event.playbook, event.event).inc()
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("remediation event subscriber failed: %r", callback)


class Audit:
    """Writes each decision to the store first, then publishes it (a write that fails is
    logged and the event still goes out: the bus must not go quiet because of a disk)."""

    def __init__(
        self, store: Store, bus: RemediationBus, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.bus = bus
        self._clock = clock

    def record(
        self,
        event: str,
        *,
        playbook: str,
        incident_id: str,
        subject: str,
        execution_id: str = "",
        execution: ExecutionRow | None = None,
        **detail: Any,
    ) -> RemediationEvent:
        """Persist and publish one decision; `execution` is saved in the same transaction."""
        ev = RemediationEvent(
            self._clock(), event, playbook, incident_id, subject, execution_id, detail
        )
        row = AuditRow(ev.ts, execution_id, playbook, incident_id, subject, event, detail)
        try:
            self.store.write_remediation([execution] if execution else [], [row])
        except StoreError as exc:
            log.error("remediation audit not saved: %s", exc)
        self.bus.publish(ev)
        return ev

    def timeline(self, execution_id: str) -> list[AuditRow]:
        """An execution's whole timeline, oldest first."""
        return self.store.audit(execution_id)
