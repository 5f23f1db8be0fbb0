"""The MQTT side's Prometheus metrics, on the registry the daemon passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class MqttMetrics:
    """Connection state, outbox depth, and the published, dropped and reconnect counts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.connected = Gauge(
            "cdnops_mqtt_connected", "1 while connected to the MQTT broker.", registry=registry
        )
        self.outbox_events = Gauge(
            "cdnops_mqtt_outbox_events",
            "Events in the store's outbox, waiting for the broker's acknowledgement.",
            registry=registry,
        )
        self.published = Counter(
            "cdnops_mqtt_published",
            "Events the broker acknowledged (QoS 1), re-sends included.",
            registry=registry,
        )
        self.dropped = Counter(
            "cdnops_mqtt_dropped",
            "Events dropped unpublished: the oldest past outbox_max_events, or unwritable.",
            registry=registry,
        )
        self.reconnects = Counter(
            "cdnops_mqtt_reconnects",
            "Connection attempts after a failed attempt or a lost connection.",
            registry=registry,
        )
