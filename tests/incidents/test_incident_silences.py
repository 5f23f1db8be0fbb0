"""Silences: recorded but not announced nor released; they expire on time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fleetkit import T0, anomaly, make_inventory
from incstreams import TICK_S, Harness, make_incident
from pydantic import ValidationError

from cdnops.config.incidents import IncidentsConfig, SilenceConfig
from cdnops.incidents.model import IncidentKind, Scope
from cdnops.incidents.silences import Silence, Silences


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def silence_config(**matchers: object) -> SilenceConfig:
    return SilenceConfig.model_validate(
        {"starts_at": at(T0), "ends_at": at(T0 + 100), "comment": "disk swap", **matchers}
    )


def test_silence_suppresses_triggering_and_expires_on_time(tmp_path: Path) -> None:
    config = IncidentsConfig(group_wait_s=0, silences=(silence_config(site="sea01"),))
    h = Harness(make_inventory({"sea01": 10}), tmp_path / "s.db", config)
    try:
        for _ in range(9):  # up to T0 + 90: silenced
            h.tick([anomaly("sea01-a01")])
            (inc,) = h.tracker.open_incidents()
            assert inc.silenced_by == "config-0"
            assert h.tracker.releasable() == []
        assert h.events == []
        assert h.store.get_incident(inc.id) is not None  # recorded all the same
        silenced = h.registry.get_sample_value(
            "cdnops_incidents_open", {"site": "sea01", "kind": "metric", "state": "silenced"}
        )
        assert silenced == 1.0

        h.tick([anomaly("sea01-a01")])  # T0 + 100: the silence has ended
        assert h.clock.now == T0 + 100
        assert [i.id for i in h.tracker.releasable()] == [inc.id]
        assert h.names() == ["opened"]
        events = [e.event for e in h.tracker.timeline(inc.id)]
        assert events[:2] == ["opened", "silenced"]
        assert events[-2:] == ["unsilenced", "opened"]
    finally:
        h.close()


def test_silenced_incident_that_resolves_publishes_nothing(tmp_path: Path) -> None:
    config = IncidentsConfig(clean_period_s=20, silences=(silence_config(appliance="sea01-*"),))
    h = Harness(make_inventory({"sea01": 4}), tmp_path / "s.db", config)
    try:
        h.ticks(2, [anomaly("sea01-a01")])
        h.ticks(4)
        assert h.tracker.open_incidents() == []
        assert h.events == []
    finally:
        h.close()


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ({}, True),
        ({"appliance": "sea01-a01"}, True),
        ({"appliance": "sea01-a0?"}, True),
        ({"appliance": "lhr01-*"}, False),
        ({"site": "sea01", "labels": {"model": "storage-v3"}}, True),
        ({"labels": {"model": "flash-v1"}}, False),
        ({"metric": "origin_latency_*"}, True),
        ({"metric": "cpu_util"}, False),
        ({"kind": IncidentKind.METRIC}, True),
        ({"kind": IncidentKind.UNREACHABLE}, False),
    ],
)
def test_matchers(matchers: dict[str, object], expected: bool) -> None:
    silence = Silence("s", T0, T0 + 1, "c", **matchers)  # type: ignore[arg-type]
    assert silence.matches(make_incident()) is expected


def test_appliance_matcher_does_not_silence_a_site_incident() -> None:
    silence = Silence("s", T0, T0 + 1, "c", appliance="*")
    assert not silence.matches(make_incident(Scope.SITE, "sea01"))
    assert Silence("s", T0, T0 + 1, "c", site="sea01").matches(make_incident(Scope.SITE, "sea01"))


def test_in_effect_from_start_to_end_excluded() -> None:
    silences = Silences([Silence("s", T0, T0 + TICK_S, "c")])
    assert silences.match(make_incident(), T0 - 1) is None
    assert silences.match(make_incident(), T0) is not None
    assert silences.match(make_incident(), T0 + TICK_S) is None
    assert [s.id for s in silences.prune(T0 + TICK_S)] == ["s"]
    assert len(silences) == 0


def test_silence_config_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="ends_at must be after starts_at"):
        SilenceConfig(starts_at=at(T0), ends_at=at(T0), comment="x")
    with pytest.raises(ValidationError, match="kind must be one of"):
        silence_config(kind="latency")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        silence_config(appliances="x")
    with pytest.raises(ValidationError, match="timezone"):
        SilenceConfig.model_validate(
            {"starts_at": "2026-12-01T00:00:00", "ends_at": "2026-12-02T00:00:00", "comment": "x"}
        )


def test_reload_replaces_config_silences_and_keeps_runtime_ones(tmp_path: Path) -> None:
    config = IncidentsConfig(silences=(silence_config(site="sea01"),))
    h = Harness(make_inventory({"sea01": 4}), tmp_path / "s.db", config)
    try:
        h.tracker.silences.add(Silence("api-1", T0, T0 + 1000, "from the API", site="lhr01"))
        h.tracker.reload(IncidentsConfig(silences=(silence_config(site="ams01", id="ams"),)))
        assert sorted(s.id for s in h.tracker.silences.all()) == ["ams", "api-1"]
        h.tick([anomaly("sea01-a01")])
        (inc,) = h.tracker.open_incidents()
        assert inc.silenced_by is None
        assert h.names() == ["opened"]
    finally:
        h.close()
