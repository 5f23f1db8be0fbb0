"""The durable outbox: every event is written to the store before it is published."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from cdnops.errors import StoreError
from cdnops.incidents.events import EventBus, IncidentEvent
from cdnops.mqtt.metrics import MqttMetrics
from cdnops.mqtt.payloads import audit_payload, execution_payload, incident_payload
from cdnops.mqtt.topics import Topics
from cdnops.remediate.audit import RemediationBus, RemediationEvent
from cdnops.store.db import OutboxRow, Store

log = logging.getLogger("cdnops.mqtt")

DEFAULT_MAX_EVENTS = 100_000  # the bound when no `mqtt:` section is configured
DROPPED_KEY = "mqtt.dropped_total"  # meta key: drops survive a restart


class Outbox:
    """The store's outbox table as the buses and the publisher see it.

    The bus subscribers only buffer: the buffer is written in one transaction on the
    loop's next turn, so the burst of events one tick makes is one small SQLite commit
    and the tick is never held up by the disk. Past `max_events` the oldest events are
    dropped and counted; sequence numbers never go back, so a consumer sees a drop as
    a gap in `seq`.
    """

    def __init__(
        self,
        store: Store,
        topics: Topics,
        instance: str,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        metrics: MqttMetrics | None = None,
    ) -> None:
        self.store = store
        self.topics = topics
        self.instance = instance
        self.max_events = max_events
        self.metrics = metrics or MqttMetrics()
        self.changed = asyncio.Event()  # set when events were appended
        self.empty = asyncio.Event()  # set while nothing waits (tests and shutdown wait on it)
        self._buffer: list[tuple[float, str, bytes]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._floor = 0  # every seq below this was trimmed: an ack of one is not counted
        self._dropping = False
        self._dropped_total = int(store.get_meta(DROPPED_KEY) or 0)
        self._len = store.outbox_len()
        self._unsubscribe: list[Callable[[], None]] = []
        self._trim()
        self._counted()

    def __len__(self) -> int:
        return self._len

    @property
    def dropped_total(self) -> int:
        """Events dropped since the store was created (kept in the store's meta table)."""
        return self._dropped_total

    def attach(self, incidents: EventBus, remediation: RemediationBus) -> None:
        """Take every incident event and every remediation decision from now on."""
        self._unsubscribe.append(incidents.subscribe(self.on_incident))
        self._unsubscribe.append(remediation.subscribe(self.on_remediation))

    def close(self) -> None:
        """Unsubscribe and write what is buffered."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self.flush()

    def on_incident(self, ev: IncidentEvent) -> None:
        """EventBus subscriber."""
        self.add(ev.ts, self.topics.incident(ev.incident), incident_payload(self.instance, ev))

    def on_remediation(self, ev: RemediationEvent) -> None:
        """RemediationBus subscriber: the audit record, and an execution's start or end."""
        self.add(ev.ts, self.topics.audit(ev.playbook), audit_payload(self.instance, ev))
        execution = execution_payload(self.instance, ev)
        if execution is not None:
            self.add(ev.ts, self.topics.execution(ev.playbook, ev.subject), execution)

    def add(self, ts: float, topic: str, payload: bytes) -> None:
        """Buffer one event; it is in the store after the loop's current turn."""
        self._buffer.append((ts, topic, payload))
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): write it now
            self.flush()
            return
        self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the buffered events in one transaction, then apply the bound."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            self.store.outbox_append(batch)
        except StoreError as exc:
            log.error("mqtt outbox: %d events lost: %s", len(batch), exc)
            self.count_dropped(len(batch))
            return
        self._len += len(batch)
        self._trim()
        self._counted()
        self.changed.set()

    def peek(self, limit: int) -> list[OutboxRow]:
        """The oldest `limit` events, oldest first."""
        return self.store.outbox_peek(limit)

    def ack(self, seqs: Sequence[int]) -> None:
        """Forget events the broker acknowledged."""
        if not seqs:
            return
        self.store.outbox_delete(seqs)
        # an event trimmed while it was in flight was counted out already
        self._len = max(0, self._len - sum(1 for s in seqs if s >= self._floor))
        self._counted()
        if self._dropping and self._len < self.max_events:
            self._dropping = False
            log.info(
                "mqtt outbox below its bound again (%d events); %d dropped in all",
                self._len,
                self._dropped_total,
            )

    def _counted(self) -> None:
        self.metrics.outbox_events.set(self._len)
        if self._len:
            self.empty.clear()
        else:
            self.empty.set()

    def _trim(self) -> None:
        if self._len <= self.max_events:
            return
        try:
            dropped = self.store.outbox_trim(self.max_events)
            oldest = self.store.outbox_peek(1)
        except StoreError as exc:
            log.error("mqtt outbox: cannot drop the oldest events: %s", exc)
            return
        self._floor = oldest[0].seq if oldest else self.store.outbox_next_seq()
        self._len -= dropped
        if not self._dropping:
            self._dropping = True
            log.warning(
                "mqtt outbox full (%d events): dropping the oldest events until the broker "
                "takes them again",
                self.max_events,
            )
        self.count_dropped(dropped)

    def count_dropped(self, n: int) -> None:
        """Count `n` events lost (and keep the total in the store)."""
        self._dropped_total += n
        self.metrics.dropped.inc(n)
        try:
            self.store.set_meta(DROPPED_KEY, self._dropped_total)
        except StoreError as exc:
            log.error("mqtt outbox: cannot save the drop count: %s", exc)
