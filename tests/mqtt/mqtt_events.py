"""Incident and remediation events for the MQTT tests, sent through the real buses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from cdnops.config.mqtt import MqttConfig
from cdnops.incidents.events import EventBus, EventType, IncidentEvent
from cdnops.incidents.model import Incident, IncidentKind, Key, Scope, Severity
from cdnops.mqtt.connection import Connection
from cdnops.mqtt.metrics import MqttMetrics
from cdnops.mqtt.outbox import Outbox
from cdnops.mqtt.publisher import Publisher
from cdnops.mqtt.topics import Topics
from cdnops.remediate.audit import Audit, RemediationBus
from cdnops.store.db import ExecutionRow, Store

INSTANCE = "t1"
PREFIX = "cdnops/t1"


def incident(n: int, *, site: str = "sea01", scope: Scope = Scope.APPLIANCE) -> Incident:
    """The n-th test incident, on appliance `<site>-a<n>` (or the site, or the fleet)."""
    subject = {Scope.APPLIANCE: f"{site}-a{n:03d}", Scope.SITE: site, Scope.FLEET: "fleet"}[scope]
    return Incident(
        id=f"inc-{n:05d}",
        key=Key(scope, subject, IncidentKind.METRIC, "latency"),
        site="" if scope is Scope.FLEET else site,
        metric="latency_ms",
        severity=Severity.WARNING,
        opened_ts=1000.0 + n,
        first_seen_ts=1000.0 + n,
        last_seen_ts=1000.0 + n,
    )


@dataclass
class Rig:
    """A real store, real buses and registry, the outbox on them, and a publisher factory."""

    store: Store
    registry: CollectorRegistry
    metrics: MqttMetrics
    incidents: EventBus
    remediation: RemediationBus
    audit: Audit
    outbox: Outbox

    def opened(self, n: int, **kw: object) -> None:
        """Publish an `opened` event for incident n on the incident bus."""
        inc = incident(n, **kw)  # type: ignore[arg-type]
        self.incidents.publish(IncidentEvent(EventType.OPENED, inc, inc.opened_ts))

    def execution(self, n: int) -> None:
        """An execution's start through the real audit (store + bus)."""
        row = ExecutionRow(
            f"ex-{n}", "restart", f"inc-{n:05d}", f"sea01-a{n:03d}", "sea01", "running",
            False, 2000.0 + n, None, "",
        )  # fmt: skip
        self.audit.record(
            "execution_started",
            playbook="restart",
            incident_id=row.incident_id,
            subject=row.subject,
            execution_id=row.id,
            execution=row,
            dry_run=False,
        )

    def publisher(self, port: int, **config: object) -> Publisher:
        """A publisher to 127.0.0.1:`port` (tiny backoff: the tests restart brokers)."""
        settings = {"port": port, "backoff_min_s": 0.05, "backoff_max_s": 0.2, **config}
        cfg = MqttConfig.model_validate(settings)
        connection = Connection.from_config(cfg, self.outbox.instance)
        return Publisher(connection, self.outbox, metrics=self.metrics)

    def value(self, name: str) -> float:
        """A metric's current value."""
        v = self.registry.get_sample_value(name)
        assert v is not None, name
        return v


def rig(path: Path, *, max_events: int = 100_000, instance: str = INSTANCE) -> Rig:
    """Everything wired on a store in `path`."""
    store = Store(path / "state.db")
    registry = CollectorRegistry()
    metrics = MqttMetrics(registry)
    incidents = EventBus(registry)
    remediation = RemediationBus(registry)
    audit = Audit(store, remediation, clock=lambda: 5000.0)
    topics = Topics(f"cdnops/{instance}")
    outbox = Outbox(store, topics, instance, max_events=max_events, metrics=metrics)
    outbox.attach(incidents, remediation)
    return Rig(store, registry, metrics, incidents, remediation, audit, outbox)
