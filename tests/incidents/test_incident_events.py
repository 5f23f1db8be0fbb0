"""The event bus: one log line per event, counters by site/kind/event, never by appliance."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fleetkit import anomaly, make_inventory
from incstreams import Harness, make_incident, propagating_logs
from prometheus_client import CollectorRegistry, generate_latest

from cdnops.config.incidents import IncidentsConfig
from cdnops.incidents.events import EventBus, EventType, IncidentEvent

CONFIG = IncidentsConfig(clean_period_s=20, group_wait_s=0)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(make_inventory({"sea01": 10}), tmp_path / "s.db", CONFIG)
    yield harness
    harness.close()


def test_events_are_counted_by_site_kind_and_event(h: Harness) -> None:
    h.ticks(2, [anomaly("sea01-a01")])
    h.ticks(3)

    def count(event: str) -> float | None:
        labels = {"site": "sea01", "kind": "metric", "event": event}
        return h.registry.get_sample_value("cdnops_incident_events_total", labels)

    assert count("opened") == 1.0
    assert count("resolved") == 1.0
    exposition = generate_latest(h.registry).decode()
    assert "sea01-a01" not in exposition  # never by appliance
    open_active = {"site": "sea01", "kind": "metric", "state": "active"}
    assert h.registry.get_sample_value("cdnops_incidents_open", open_active) == 0.0


def test_each_event_is_one_log_line(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    with propagating_logs(), caplog.at_level(logging.INFO, logger="cdnops.incidents"):
        h.tick([anomaly("sea01-a01")])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("incident ")]
    (inc,) = h.tracker.open_incidents()
    assert lines == [
        f"incident opened id={inc.id} scope=appliance subject=sea01-a01 kind=metric "
        "family=origin_latency_p99_ms severity=warning"
    ]


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = EventBus(CollectorRegistry())
    got: list[IncidentEvent] = []

    def broken(event: IncidentEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(got.append)
    event = IncidentEvent(EventType.OPENED, make_incident(), 1.0)
    bus.publish(event)
    assert got == [event]
    unsubscribe()
    bus.publish(event)
    assert got == [event]


def test_documented_config_fragment_is_valid_and_matches_the_defaults() -> None:
    doc = Path(__file__).parents[2] / "docs" / "incidents-config.yaml"
    section = yaml.safe_load(doc.read_text())["incidents"]
    parsed = IncidentsConfig.model_validate(section)
    assert parsed.model_dump(exclude={"silences"}) == IncidentsConfig().model_dump(
        exclude={"silences"}
    )
    assert len(parsed.silences) == 1


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_exposition_passes_promtool(h: Harness) -> None:
    h.ticks(2, [anomaly("sea01-a01")])
    h.ticks(3)
    out = subprocess.run(
        ["promtool", "check", "metrics"],
        input=generate_latest(h.registry),
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
