"""The group wait runs from the first evidence of the anomalies that opened an incident."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from fleetkit import anomaly, make_inventory
from incstreams import TICK_S, Harness, make_incident

from cdnops.config.incidents import IncidentsConfig
from cdnops.incidents.model import Scope, anomaly_from_json, anomaly_to_json, evidence_lead_s
from cdnops.incidents.persist import from_row, to_row
from cdnops.model import Anomaly

# 1.5 ticks: long enough to see the peers of the next tick, shorter than the two ticks
# an anomaly confirmed on its second firing tick would otherwise wait
CONFIG = IncidentsConfig(clean_period_s=20, hold_down_s=300, group_wait_s=15)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(make_inventory({"sea01": 10, "lhr01": 10}), tmp_path / "s.db", CONFIG)
    yield harness
    harness.close()


def confirmed(h: Harness, appliance: str, lead_ticks: int = 1) -> Anomaly:
    """An anomaly entering on the next tick whose evidence began `lead_ticks` before."""
    since = h.clock.now + TICK_S
    return replace(anomaly(appliance, since=since), onset_ts=since - lead_ticks * TICK_S)


def released(h: Harness) -> list[str]:
    return sorted(i.subject for i in h.tracker.releasable())


def test_evidence_lead_is_the_longest_confirmation_and_zero_when_unknown() -> None:
    a = anomaly("sea01-a01", since=100.0)
    assert evidence_lead_s([a]) == 0.0
    assert evidence_lead_s([replace(a, onset_ts=80.0), replace(a, onset_ts=90.0)]) == 20.0
    assert evidence_lead_s([replace(a, onset_ts=130.0)]) == 0.0  # never a negative wait
    assert evidence_lead_s([]) == 0.0


def test_wait_counts_from_the_first_evidence_not_the_opening(h: Harness) -> None:
    early = confirmed(h, "sea01-a01")  # fired a tick before it entered
    plain = anomaly("sea01-a05", since=h.clock.now + TICK_S)  # no onset known
    h.tick([early, plain])
    (inc,) = [i for i in h.tracker.open_incidents() if i.subject == "sea01-a01"]
    assert inc.onset_ts == inc.opened_ts - TICK_S
    assert released(h) == []  # 10 s of evidence, 15 s wait
    h.tick([early, plain])
    assert released(h) == ["sea01-a01"]  # 20 s from its evidence, 10 s from its opening
    h.tick([early, plain])
    assert released(h) == ["sea01-a01", "sea01-a05"]


def test_a_reopening_restarts_the_wait_from_the_reopening(h: Harness) -> None:
    h.ticks(3, [confirmed(h, "sea01-a01")])
    h.ticks(4)  # quiet for the clean period: resolved
    assert h.tracker.open_incidents() == []
    back = confirmed(h, "sea01-a01", lead_ticks=2)
    h.tick([back])
    (inc,) = h.tracker.open_incidents()
    assert inc.flaps == 1
    assert released(h) == []  # its evidence is 20 s old, but it was just reopened
    h.tick([back])
    assert released(h) == []
    h.tick([back])
    assert released(h) == ["sea01-a01"]


def test_onsets_survive_the_store_and_old_rows_still_load(tmp_path: Path) -> None:
    inc = make_incident()
    a = replace(anomaly("sea01-a01", since=inc.opened_ts), onset_ts=inc.opened_ts - 20)
    inc.anomalies, inc.onset_ts = (a,), inc.opened_ts - 20
    back = from_row(to_row(inc))
    assert back.onset_ts == inc.onset_ts
    assert back.anomalies == (a,)
    # rows written before onsets: no onset in the incident or its anomalies
    row = to_row(inc)
    del row.body["onset_ts"]
    for d in row.body["anomalies"]:
        del d["onset_ts"]
    old = from_row(row)
    assert old.onset_ts is None
    assert math.isnan(old.anomalies[0].onset_ts)
    # an unknown onset is stored as null (JSON has no NaN)
    assert anomaly_to_json(anomaly("sea01-a01"))["onset_ts"] is None
    assert math.isnan(anomaly_from_json(anomaly_to_json(anomaly("sea01-a01"))).onset_ts)


def test_a_restarted_tracker_keeps_counting_from_the_evidence(tmp_path: Path) -> None:
    inv = make_inventory({"sea01": 10})
    first = Harness(inv, tmp_path / "s.db", CONFIG)
    a = confirmed(first, "sea01-a02")
    first.tick([a])
    assert released(first) == []
    first.close()
    again = Harness(inv, tmp_path / "s.db", CONFIG, clock=first.clock)
    try:
        again.tick([a])
        assert released(again) == ["sea01-a02"]
    finally:
        again.close()


def outage(h: Harness, rows: Sequence[int]) -> list[Anomaly]:
    return [confirmed(h, f"sea01-a{i:02d}") for i in rows]


@pytest.mark.parametrize(
    ("group_wait_s", "first_wave"),
    [
        # one poll interval (the benchmark's setting): the first wave is enough for the
        # site to form on the tick it enters, before anything is released
        (TICK_S, range(4)),
        # one appliance alone on the first tick: a wait longer than its confirmation
        # (one tick) keeps it until its peers enter on the next tick
        (1.5 * TICK_S, range(1)),
    ],
)
def test_site_outage_entering_over_two_ticks_releases_no_appliance(
    tmp_path: Path, group_wait_s: float, first_wave: range
) -> None:
    config = IncidentsConfig(clean_period_s=20, group_wait_s=group_wait_s)
    h = Harness(make_inventory({"sea01": 10, "lhr01": 10}), tmp_path / "s.db", config)
    try:
        # each appliance's evidence began a tick before it entered: the wait from its
        # evidence is already (nearly) over when its incident opens
        wave1 = outage(h, first_wave)
        h.tick(wave1)
        seen = set(released(h))
        wave2 = outage(h, range(len(first_wave), 10))
        for _ in range(4):
            h.tick([*wave1, *wave2])
            seen |= set(released(h))
        incidents = h.tracker.open_incidents()
        (site,) = [i for i in incidents if i.scope is Scope.SITE]
        apps = [i for i in incidents if i.scope is Scope.APPLIANCE]
        assert site.subject == "sea01"
        assert len(site.members) == 10
        assert len(apps) == 10
        assert all(a.parent == site.id for a in apps)
        assert seen == {"sea01"}  # the site incident alone, once its own wait is over
    finally:
        h.close()


def test_an_early_appliance_is_held_while_its_peers_fire_unconfirmed(tmp_path: Path) -> None:
    # a one-tick wait: the early appliance's evidence-based wait is over when it enters,
    # but five peers fire (not yet confirmed): its site may become one incident
    config = IncidentsConfig(clean_period_s=20, group_wait_s=TICK_S)
    h = Harness(make_inventory({"sea01": 10, "lhr01": 10}), tmp_path / "s.db", config)
    try:
        peers = [f"sea01-a{i:02d}" for i in range(1, 6)]
        early = outage(h, range(1))
        h.tick(early, firing=peers)
        assert released(h) == []
        h.tick([*early, *outage(h, range(1, 6))])
        (site,) = [i for i in h.tracker.open_incidents() if i.scope is Scope.SITE]
        assert "sea01-a00" in site.members
        assert released(h) == []  # inhibited by the site incident, before any release
    finally:
        h.close()


def test_a_lone_fault_in_a_quiet_site_is_released_when_its_evidence_wait_ends(
    tmp_path: Path,
) -> None:
    config = IncidentsConfig(clean_period_s=20, group_wait_s=TICK_S)
    h = Harness(make_inventory({"sea01": 10, "lhr01": 10}), tmp_path / "s.db", config)
    try:
        lone = outage(h, range(1))
        h.tick(lone, firing=["lhr01-a03"])  # another site's noise does not hold it
        assert released(h) == ["sea01-a00"]
    finally:
        h.close()
