"""The internal incident event bus: subscribers, one log line and a counter per event."""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from cdnops.incidents.model import Incident

log = logging.getLogger("cdnops.incidents")

FLEET_SITE_LABEL = "fleet"  # the `site` label of fleet incidents


class EventType(enum.StrEnum):
    """What happened to an incident."""

    OPENED = "opened"
    UPDATED = "updated"
    RESOLVED = "resolved"


class Change(enum.StrEnum):
    """What an `updated` event is about."""

    ABSORBED = "absorbed"
    INHIBITED = "inhibited"
    RELEASED = "released"  # no longer inhibited: its site or fleet incident resolved
    FLAPPED = "flapped"
    TRIAGED = "triaged"
    ACKNOWLEDGED = "acknowledged"  # an operator took it on (API or MQTT command)


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One event; `incident` is a snapshot taken when it happened."""

    type: EventType
    incident: Incident
    ts: float
    change: Change | None = None
    detail: str = ""

    @property
    def name(self) -> str:
        """`opened`, `resolved` or the change of an update (`flapped`, ...): the metric label."""
        return str(self.change) if self.change is not None else str(self.type)

    def line(self) -> str:
        """The one log line for this event."""
        inc = self.incident
        parts = [
            f"incident {self.name}",
            f"id={inc.id}",
            f"scope={inc.scope}",
            f"subject={inc.subject}",
            f"kind={inc.kind}",
            f"family={inc.family}",
            f"severity={inc.severity}",
        ]
        if inc.flaps:
            parts.append(f"flaps={inc.flaps}")
        if inc.parent:
            parts.append(f"parent={inc.parent}")
        if self.detail:
            parts.append(f"detail={self.detail!r}")
        return " ".join(parts)


Subscriber = Callable[[IncidentEvent], None]


def site_label(inc: Incident) -> str:
    """The `site` metric label: the site, or `fleet` for a fleet incident."""
    return inc.site or FLEET_SITE_LABEL


def state_label(inc: Incident, *, waiting: bool) -> str:
    """The `state` metric label of an open incident."""
    if inc.silenced:
        return "silenced"
    if inc.inhibited:
        return "inhibited"
    return "waiting" if waiting else "active"


def open_counts(
    incidents: Iterable[Incident], waiting: Iterable[bool]
) -> list[tuple[tuple[str, str, str], int]]:
    """The `cdnops_incidents_open` label sets of open incidents (with their group-wait flags)."""
    return [
        ((site_label(i), i.kind.value, state_label(i, waiting=w)), 1)
        for i, w in zip(incidents, waiting, strict=True)
    ]


class EventBus:
    """Synchronous fan-out on the event loop's thread.

    Subscribers must be quick (an MQTT publisher puts the event in its outbox and
    returns); one that raises is logged and the others still get the event.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._subscribers: list[Subscriber] = []
        self._events = PromCounter(
            "cdnops_incident_events",
            "Incident events by site, incident kind and event.",
            ("site", "kind", "event"),
            registry=registry,
        )
        self._open = Gauge(
            "cdnops_incidents_open",
            "Open incidents by site, incident kind and state.",
            ("site", "kind", "state"),
            registry=registry,
        )
        self._open_values: dict[tuple[str, str, str], int] = {}

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` for every later event; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def publish(self, event: IncidentEvent) -> None:
        """Log, count and hand `event` to every subscriber."""
        log.info(event.line())
        inc = event.incident
        self._events.labels(site_label(inc), str(inc.kind), event.name).inc()
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("incident event subscriber failed: %r", callback)

    def set_open(self, counts: Iterable[tuple[tuple[str, str, str], int]]) -> None:
        """Set the open-incident gauges; label sets no longer present go to 0.

        Only changed values are written: a fleet has thousands of label sets and the
        gauges are set on every tick.
        """
        current = Counter[tuple[str, str, str]]()
        for labels, n in counts:
            current[labels] += n
        for labels in self._open_values.keys() - current.keys():
            if self._open_values[labels]:
                self._open.labels(*labels).set(0)
                self._open_values[labels] = 0
        for labels, n in current.items():
            if self._open_values.get(labels) != n:
                self._open.labels(*labels).set(n)
                self._open_values[labels] = n
