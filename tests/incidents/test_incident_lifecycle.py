"""Incident lifecycle: open, absorb, flap, resolve, hold-down, exclusions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import LATENCY, T0, anomaly, make_inventory
from incstreams import TICK_S, Harness

from cdnops.config.incidents import IncidentsConfig
from cdnops.incidents.model import IncidentKind, Scope, Severity
from cdnops.model import ApplianceState

CONFIG = IncidentsConfig(clean_period_s=60, hold_down_s=300, group_wait_s=20)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(make_inventory({"sea01": 10}), tmp_path / "state.db", CONFIG)
    yield harness
    harness.close()


def test_single_appliance_fault_yields_exactly_one_appliance_incident(h: Harness) -> None:
    # A disk failure: errors first, then latency, then 5xx, all on one appliance.
    disk = anomaly("sea01-a03", "disk_errors_total", since=T0)
    latency = anomaly("sea01-a03", since=T0 + 40)
    errors = anomaly("sea01-a03", "http_5xx_ratio", since=T0 + 60, score=0.95)
    h.ticks(2, [disk])
    h.ticks(2, [disk, latency])
    h.ticks(5, [disk, latency, errors])

    (inc,) = h.tracker.open_incidents()
    assert (inc.scope, inc.subject, inc.kind, inc.family) == (
        Scope.APPLIANCE, "sea01-a03", IncidentKind.METRIC, "disk_errors_total"
    )  # fmt: skip
    assert inc.metric == "disk_errors_total"  # named after the first anomaly
    assert [a.metric for a in inc.anomalies] == ["disk_errors_total", LATENCY, "http_5xx_ratio"]
    assert inc.severity is Severity.CRITICAL  # raised by the 5xx anomaly's score
    assert h.names() == ["opened", "absorbed", "absorbed"]


def test_severity_is_warning_below_the_critical_score(h: Harness) -> None:
    h.tick([anomaly("sea01-a03", score=0.5)])
    (inc,) = h.tracker.open_incidents()
    assert inc.severity is Severity.WARNING


def test_one_family_per_appliance_gives_one_incident(h: Harness) -> None:
    h.ticks(20, [anomaly("sea01-a03")])
    (inc,) = h.tracker.open_incidents()
    assert inc.flaps == 0
    assert inc.absorbed_total == 1
    assert h.names() == ["opened"]


def test_releasable_only_after_group_wait(h: Harness) -> None:
    h.tick([anomaly("sea01-a03")])
    assert h.tracker.releasable() == []
    h.tick([anomaly("sea01-a03")])
    assert h.tracker.releasable() == []
    h.tick([anomaly("sea01-a03")])  # 20 s after opening
    assert [i.subject for i in h.tracker.releasable()] == ["sea01-a03"]


def test_flapping_metric_yields_one_incident_with_a_flap_count(h: Harness) -> None:
    for _ in range(4):
        h.ticks(2, [anomaly("sea01-a01")])
        h.ticks(2)  # 20 s quiet: shorter than the clean period
    (inc,) = h.tracker.open_incidents()
    assert inc.flaps == 3
    assert not inc.active
    assert h.names() == ["opened", "flapped", "flapped", "flapped"]


def test_resolves_after_the_clean_period(h: Harness) -> None:
    h.ticks(3, [anomaly("sea01-a01")])
    h.ticks(6)  # the first tick without it starts the quiet period: 50 s so far
    assert len(h.tracker.open_incidents()) == 1
    h.tick()  # 60 s
    assert h.tracker.open_incidents() == []
    assert h.names() == ["opened", "resolved"]
    resolved = h.events[-1].incident
    assert resolved.resolved_ts == h.clock.now


def test_recurrence_within_hold_down_reopens_the_same_incident(h: Harness) -> None:
    h.ticks(3, [anomaly("sea01-a01")])
    h.ticks(7)
    assert h.names() == ["opened", "resolved"]
    first_id = h.events[0].incident.id
    h.ticks(10)  # 100 s later: within the 300 s hold-down
    h.tick([anomaly("sea01-a01", since=h.clock.now)])
    (inc,) = h.tracker.open_incidents()
    assert inc.id == first_id
    assert inc.flaps == 1
    assert h.names() == ["opened", "resolved", "opened"]
    assert h.events[-1].detail == "flap 1"
    assert h.tracker.releasable() == []  # the group wait starts again
    h.ticks(2, [anomaly("sea01-a01", since=h.clock.now)])
    assert [i.id for i in h.tracker.releasable()] == [first_id]


def test_recurrence_after_hold_down_opens_a_new_incident(h: Harness) -> None:
    h.ticks(3, [anomaly("sea01-a01")])
    h.ticks(7)
    assert h.names() == ["opened", "resolved"]
    first_id = h.events[0].incident.id
    h.ticks(int(300 / TICK_S) + 1)
    h.tick([anomaly("sea01-a01", since=h.clock.now)])
    (inc,) = h.tracker.open_incidents()
    assert inc.id != first_id
    assert inc.flaps == 0


def test_benign_surge_without_anomalies_opens_nothing(h: Harness) -> None:
    import numpy as np

    surge = np.ones((10, 12)) * 3.0  # every appliance's traffic tripled, detection quiet
    for _ in range(10):
        h.tick(values=surge)
    assert h.tracker.open_incidents() == []
    assert h.events == []
    assert h.store.load_incidents() == []


@pytest.mark.parametrize("state", [ApplianceState.DRAINED, ApplianceState.MAINTENANCE])
def test_drained_or_maintenance_appliance_is_not_an_incident(
    h: Harness, state: ApplianceState
) -> None:
    for _ in range(5):
        h.tick([anomaly("sea01-a02"), anomaly("sea01-a02", "reachability")], {"sea01-a02": state})
    assert h.tracker.open_incidents() == []
    # Its poll now fails (state unknown): it is still the appliance in maintenance.
    for _ in range(3):
        h.tick([anomaly("sea01-a02", "reachability")], {"sea01-a02": ApplianceState.UNKNOWN})
    assert h.tracker.open_incidents() == []


def test_unreachable_and_service_failed_are_critical_kinds(h: Harness) -> None:
    # Two appliances, one problem each: one incident each, named after its kind.
    h.tick([anomaly("sea01-a04", "reachability"), anomaly("sea01-a05", "service:nginx")])
    kinds = {(i.subject, i.kind, i.severity) for i in h.tracker.open_incidents()}
    assert kinds == {
        ("sea01-a04", IncidentKind.UNREACHABLE, Severity.CRITICAL),
        ("sea01-a05", IncidentKind.SERVICE_FAILED, Severity.CRITICAL),
    }


def test_families_name_the_incident(tmp_path: Path) -> None:
    config = IncidentsConfig(families={LATENCY: "latency", "http_5xx_ratio": "latency"})
    h = Harness(make_inventory({"sea01": 4}), tmp_path / "s.db", config)
    try:
        h.tick([anomaly("sea01-a01"), anomaly("sea01-a01", "http_5xx_ratio")])
        (inc,) = h.tracker.open_incidents()
        assert inc.family == "latency"
        assert inc.absorbed_total == 2
    finally:
        h.close()


def test_timeline_is_kept_in_the_store(h: Harness) -> None:
    h.ticks(2, [anomaly("sea01-a01")])
    h.ticks(2)
    h.ticks(1, [anomaly("sea01-a01")])
    (inc,) = h.tracker.open_incidents()
    events = [e.event for e in h.tracker.timeline(inc.id)]
    assert events == ["opened", "opened", "quiet", "flapped"]


def test_config_rejects_unknown_states_and_duplicate_silences() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown state"):
        IncidentsConfig(excluded_states=("broken",))
    silence = {"id": "x", "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-12-02T00:00:00Z",
               "comment": "c"}  # fmt: skip
    with pytest.raises(ValidationError, match="duplicate id"):
        IncidentsConfig.model_validate({"silences": [silence, silence]})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        IncidentsConfig.model_validate({"clean_period": 5})
