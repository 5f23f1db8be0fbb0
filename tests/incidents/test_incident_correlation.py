"""Site and fleet correlation, inhibition and the grouping wait."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import LATENCY, anomaly, make_inventory
from incstreams import Harness

from cdnops.config.incidents import CorrelationConfig, IncidentsConfig
from cdnops.incidents.correlate import qualifies
from cdnops.incidents.model import Scope

CONFIG = IncidentsConfig(clean_period_s=60, group_wait_s=30)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(make_inventory({"sea01": 10, "lhr01": 10}), tmp_path / "s.db", CONFIG)
    yield harness
    harness.close()


def outage(site: str, rows: range) -> list:  # type: ignore[type-arg]
    return [anomaly(f"{site}-a{i:02d}") for i in rows]


def test_site_upstream_outage_is_one_site_incident_with_members_inhibited(h: Harness) -> None:
    # The outage reaches the appliances over two polls, as it does in practice.
    h.tick(outage("sea01", range(2)))
    h.ticks(5, outage("sea01", range(8)))

    incidents = h.tracker.open_incidents()
    sites = [i for i in incidents if i.scope is Scope.SITE]
    apps = [i for i in incidents if i.scope is Scope.APPLIANCE]
    assert [(s.subject, s.family) for s in sites] == [("sea01", LATENCY)]
    site = sites[0]
    assert site.members == tuple(f"sea01-a{i:02d}" for i in range(8))
    assert len(apps) == 8
    assert all(a.parent == site.id for a in apps)
    assert [i.id for i in h.tracker.releasable()] == [site.id]


def test_nothing_is_released_before_the_site_incident_can_form(h: Harness) -> None:
    h.tick(outage("sea01", range(2)))
    assert h.tracker.releasable() == []  # group wait: the site incident may still form
    h.tick(outage("sea01", range(2)))
    assert h.tracker.releasable() == []
    h.tick(outage("sea01", range(5)))
    assert {i.scope for i in h.tracker.open_incidents()} == {Scope.APPLIANCE, Scope.SITE}
    assert h.tracker.releasable() == []  # the site incident waits too
    h.ticks(3, outage("sea01", range(5)))
    assert [i.scope for i in h.tracker.releasable()] == [Scope.SITE]


def test_site_events_inhibit_and_resolve_together(h: Harness) -> None:
    h.tick(outage("sea01", range(2)))  # announced before the site incident exists
    h.ticks(3, outage("sea01", range(4)))
    names = h.names()
    assert names.count("opened") == 5
    assert names.count("inhibited") == 2  # the other two opened already inhibited
    site_id = next(e.incident.id for e in h.events if e.incident.scope is Scope.SITE)
    assert all(
        e.incident.parent == site_id
        for e in h.events
        if e.incident.scope is Scope.APPLIANCE
        and e.name in ("opened", "inhibited")
        and e.incident.subject in ("sea01-a02", "sea01-a03")
    )
    h.ticks(7)
    assert h.tracker.open_incidents() == []
    assert h.names().count("resolved") == 5
    assert "released" not in h.names()


def test_a_late_member_is_inhibited_on_arrival(h: Harness) -> None:
    h.ticks(2, outage("sea01", range(4)))
    h.tick(outage("sea01", range(5)))
    late = next(i for i in h.tracker.open_incidents() if i.subject == "sea01-a04")
    assert late.inhibited


def test_two_sick_appliances_of_ten_stay_appliance_incidents(h: Harness) -> None:
    h.ticks(5, outage("sea01", range(2)))
    assert {i.scope for i in h.tracker.open_incidents()} == {Scope.APPLIANCE}
    assert len(h.tracker.releasable()) == 2


def test_different_families_do_not_group(h: Harness) -> None:
    metrics = ["cpu_util", "mem_util", "temperature_c", "http_5xx_ratio"]
    h.ticks(5, [anomaly(f"sea01-a{i:02d}", m) for i, m in enumerate(metrics)])
    assert {i.scope for i in h.tracker.open_incidents()} == {Scope.APPLIANCE}


def test_outage_in_several_sites_is_one_fleet_incident(tmp_path: Path) -> None:
    inv = make_inventory({s: 4 for s in ("ams01", "lhr01", "sea01", "sin01")})
    h = Harness(inv, tmp_path / "s.db", CONFIG)
    try:
        h.ticks(4, [a for s in ("ams01", "lhr01", "sea01") for a in outage(s, range(3))])
        by_scope = {s: [i for i in h.tracker.open_incidents() if i.scope is s] for s in Scope}
        (fleet,) = by_scope[Scope.FLEET]
        assert fleet.members == ("ams01", "lhr01", "sea01")
        assert fleet.site == ""
        assert all(s.parent == fleet.id for s in by_scope[Scope.SITE])
        assert len(by_scope[Scope.APPLIANCE]) == 9
        assert all(a.inhibited for a in by_scope[Scope.APPLIANCE])
        assert [i.id for i in h.tracker.releasable()] == [fleet.id]
        counted = h.registry.get_sample_value(
            "cdnops_incidents_open", {"site": "fleet", "kind": "metric", "state": "active"}
        )
        assert counted == 1.0
    finally:
        h.close()


def test_drained_appliances_do_not_count_in_the_site_size(h: Harness) -> None:
    from cdnops.model import ApplianceState

    drained = {f"sea01-a{i:02d}": ApplianceState.DRAINED for i in range(4, 10)}
    for _ in range(3):
        h.tick(outage("sea01", range(2)), drained)  # 2 of 4 in service: 50 %
    assert any(i.scope is Scope.SITE for i in h.tracker.open_incidents())


@pytest.mark.parametrize(
    ("affected", "size", "expected"),
    [(1, 2, False), (2, 10, False), (3, 10, True), (2, 6, True), (3, 100, True), (0, 0, False)],
)
def test_qualifies(affected: int, size: int, expected: bool) -> None:
    cfg = CorrelationConfig(min_share=0.3, min_count=3, min_members=2)
    assert qualifies(affected, size, cfg) is expected


def test_member_with_its_own_trigger_is_inhibited_by_the_site(h: Harness) -> None:
    # sea01-a00 was already sick (cpu) when the site's latency went.
    h.ticks(2, [anomaly("sea01-a00", "cpu_util")])
    h.ticks(3, [anomaly("sea01-a00", "cpu_util"), *outage("sea01", range(5))])
    a00 = next(i for i in h.tracker.open_incidents() if i.subject == "sea01-a00")
    site = next(i for i in h.tracker.open_incidents() if i.scope is Scope.SITE)
    assert a00.family == "cpu_util"
    assert a00.parent == site.id
    assert "sea01-a00" in site.members
    assert site.metric == LATENCY


def test_member_released_only_when_no_parent_is_left(h: Harness) -> None:
    both = [anomaly(f"sea01-a{i:02d}", m) for i in range(4) for m in (LATENCY, "http_5xx_ratio")]
    h.ticks(3, both)
    sites = [i for i in h.tracker.open_incidents() if i.scope is Scope.SITE]
    assert sorted(s.family for s in sites) == ["http_5xx_ratio", LATENCY]
    h.ticks(8, outage("sea01", range(4)))  # 5xx clears and its site incident resolves
    apps = [i for i in h.tracker.open_incidents() if i.scope is Scope.APPLIANCE]
    latency_site = next(i for i in h.tracker.open_incidents() if i.scope is Scope.SITE)
    assert latency_site.family == LATENCY
    assert all(a.parent == latency_site.id for a in apps)
    assert "released" not in h.names()


def test_member_that_comes_back_after_resolving_is_inhibited_again(h: Harness) -> None:
    h.ticks(3, outage("sea01", range(5)))
    h.ticks(8, outage("sea01", range(4)))  # sea01-a04 recovers and its incident resolves
    assert "sea01-a04" not in {i.subject for i in h.tracker.open_incidents()}
    h.ticks(1, outage("sea01", range(5)))  # and falls back into the outage
    a04 = next(i for i in h.tracker.open_incidents() if i.subject == "sea01-a04")
    assert a04.flaps == 1
    assert a04.inhibited
