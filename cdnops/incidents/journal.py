"""What one tick changed: incidents to write, timeline lines, events to publish after the write."""

from __future__ import annotations

import logging

from cdnops.errors import StoreError
from cdnops.incidents.events import Change, EventBus, EventType, IncidentEvent
from cdnops.incidents.model import Incident, TimelineEntry
from cdnops.incidents.persist import to_row
from cdnops.store.db import Store, TimelineRow

log = logging.getLogger("cdnops.incidents")


class Journal:
    """Collects a tick's changes and commits them in one transaction, then publishes.

    Events go out after the write, so a subscriber that reads the store sees what the
    event says. A failed write is logged once and retried on the next tick; the
    events wait with it, so nothing is announced that the store does not hold.
    """

    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._dirty: dict[str, Incident] = {}
        self._timeline: list[TimelineRow] = []
        self._events: list[IncidentEvent] = []
        self._seen: dict[str, float] = {}
        self._failing = False

    def dirty(self, inc: Incident) -> None:
        """Write `inc` at the end of the tick."""
        self._dirty[inc.id] = inc

    def note(self, inc: Incident, ts: float, event: str, detail: str = "") -> None:
        """Add a timeline line (and write the incident)."""
        self._timeline.append(TimelineRow(inc.id, ts, event, detail))
        self._dirty[inc.id] = inc

    def emit(
        self,
        inc: Incident,
        type_: EventType,
        ts: float,
        change: Change | None = None,
        detail: str = "",
    ) -> None:
        """Queue an event; incidents not announced yet (silenced ones) stay off the bus."""
        self.note(inc, ts, str(change or type_), detail)
        if inc.announced:
            self._events.append(IncidentEvent(type_, inc.snapshot(), ts, change, detail))

    def seen(self, inc: Incident) -> None:
        """Write only `inc`'s `last_seen_ts` at the end of the tick (a cheap update)."""
        self._seen[inc.id] = inc.last_seen_ts

    def dirty_incidents(self) -> list[Incident]:
        """The incidents the next flush writes."""
        return list(self._dirty.values())

    @property
    def changed(self) -> bool:
        """Whether an incident changed this tick (not counting `last_seen_ts` alone)."""
        return bool(self._dirty or self._timeline or self._events)

    @property
    def pending(self) -> bool:
        return bool(self._dirty or self._timeline or self._events or self._seen)

    def flush(self) -> None:
        """Write what changed in one transaction, then publish the events."""
        try:
            self.store.write_incidents(
                [to_row(i) for i in self._dirty.values()],
                self._timeline,
                [(k, ts) for k, ts in self._seen.items() if k not in self._dirty],
            )
        except StoreError as exc:
            if not self._failing:
                log.error("incident store write failed, retrying every tick: %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("incident store write recovered")
            self._failing = False
        self._dirty.clear()
        self._timeline.clear()
        self._seen.clear()
        events, self._events = self._events, []
        for event in events:
            self.bus.publish(event)


def timeline_entries(rows: list[TimelineRow]) -> list[TimelineEntry]:
    """Store rows as timeline entries."""
    return [TimelineEntry(r.ts, r.event, r.detail) for r in rows]
