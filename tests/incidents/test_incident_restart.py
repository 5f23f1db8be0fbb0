"""A restart (new store and tracker on the same file) keeps open incidents, without duplicates."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fleetkit import Clock, anomaly, make_frame, make_inventory
from incstreams import Harness, propagating_logs
from prometheus_client import CollectorRegistry

from cdnops.config.incidents import IncidentsConfig
from cdnops.incidents.events import EventBus, IncidentEvent
from cdnops.incidents.model import Scope
from cdnops.incidents.tracker import IncidentTracker
from cdnops.model import DetectionResult
from cdnops.store.db import Store

CONFIG = IncidentsConfig(clean_period_s=60, hold_down_s=300)


def test_restart_keeps_open_incidents_open_without_duplicates(tmp_path: Path) -> None:
    inv = make_inventory({"sea01": 10, "lhr01": 10})
    path = tmp_path / "state.db"
    before = Harness(inv, path, CONFIG)
    sick = [anomaly(f"sea01-a{i:02d}") for i in range(5)] + [anomaly("lhr01-a03", "cpu_util")]
    before.ticks(4, sick)
    opened = {i.id: i for i in before.tracker.open_incidents()}
    assert len(opened) == 7
    before.close()

    after = Harness(inv, path, CONFIG, clock=Clock(before.clock.now))
    try:
        assert {i.id: i.key for i in after.tracker.open_incidents()} == {
            i.id: i.key for i in opened.values()
        }
        after.ticks(3, sick)  # detection re-reports the same problems after its own restart
        now_open = after.tracker.open_incidents()
        assert {i.id for i in now_open} == set(opened)
        assert after.events == []  # nothing is announced twice
        site = next(i for i in now_open if i.scope is Scope.SITE)
        assert sorted(i.subject for i in now_open if i.parent == site.id) == [
            f"sea01-a{i:02d}" for i in range(5)
        ]
        assert len(after.store.load_incidents()) == 7
    finally:
        after.close()


def test_restart_remembers_recently_resolved_for_the_hold_down(tmp_path: Path) -> None:
    inv = make_inventory({"sea01": 4})
    path = tmp_path / "state.db"
    before = Harness(inv, path, CONFIG)
    before.ticks(2, [anomaly("sea01-a01")])
    before.ticks(7)
    (resolved,) = [e.incident for e in before.events if e.name == "resolved"]
    before.close()

    after = Harness(inv, path, CONFIG, clock=Clock(before.clock.now))
    try:
        after.tick([anomaly("sea01-a01", since=after.clock.now)])
        (inc,) = after.tracker.open_incidents()
        assert inc.id == resolved.id
        assert inc.flaps == 1
    finally:
        after.close()


def test_store_outage_holds_events_and_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    store = Store(path, busy_timeout_s=0.05)
    events: list[IncidentEvent] = []
    bus = EventBus(CollectorRegistry())
    bus.subscribe(events.append)
    clock = Clock()
    tracker = IncidentTracker(CONFIG, store, bus, clock=clock)
    inv = make_inventory({"sea01": 4})
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # someone holds the write lock
        with propagating_logs(), caplog.at_level(logging.INFO, logger="cdnops.incidents"):
            for seq in (1, 2):
                clock.now += 10
                tracker.update(make_frame(inv, clock.now, seq), result(clock.now, seq))
            assert events == []  # nothing announced that the store does not hold
            other.execute("ROLLBACK")
            clock.now += 10
            tracker.update(make_frame(inv, clock.now, 3), result(clock.now, 3))
        assert [e.name for e in events] == ["opened"]
        assert [r.id for r in store.load_incidents()] == [events[0].incident.id]
        failures = [r for r in caplog.records if "store write failed" in r.getMessage()]
        assert len(failures) == 1  # logged once, not every tick
        assert any("store write recovered" in r.getMessage() for r in caplog.records)
    finally:
        other.close()
        tracker.close()
        store.close()


def result(ts: float, seq: int) -> DetectionResult:
    sick = (anomaly("sea01-a01"),)
    return DetectionResult(ts, seq, np.zeros((4, 12)), sick, sick if seq == 1 else (), ())
