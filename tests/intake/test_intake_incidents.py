"""Alert incidents on a real tracker and store: dedup, resolution, restarts, and the tick's
timers, correlation, silences and group wait."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import LATENCY, T0, anomaly
from intake_helpers import TICK_S, Rig, alert, notification

from cdnops.config.incidents import IncidentsConfig
from cdnops.config.intake import AlertmanagerConfig
from cdnops.incidents.model import IncidentKind, Scope, Severity, Status
from cdnops.incidents.silences import Silence
from cdnops.remediate.match import trigger_matches
from cdnops.remediate.schema import Trigger


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "state.db")
    yield r
    r.close()


def edge_down(status: str = "firing", fp: str = "fp-1", **labels: str) -> dict[str, object]:
    return alert("EdgeDown", status, fp, **({"appliance": "sea01-a01"} | labels))


def test_a_firing_alert_opens_one_alert_incident(rig: Rig) -> None:
    result = rig.send(edge_down(severity="critical", team="cdn"))
    (inc,) = rig.open()
    assert result.to_json() == {
        "received": 1, "opened": [inc.id], "updated": [], "resolved": [], "ignored": 0,
        "skipped": [], "truncated": 0,
    }  # fmt: skip
    assert (inc.scope, inc.subject, inc.kind, inc.family) == (
        Scope.APPLIANCE, "sea01-a01", IncidentKind.ALERT, "EdgeDown"
    )  # fmt: skip
    assert (inc.metric, inc.site, inc.severity) == ("EdgeDown", "", Severity.CRITICAL)
    assert inc.labels["team"] == "cdn"
    assert inc.active
    assert inc.opened_ts == T0
    assert inc.first_seen_ts == pytest.approx(T0 - 119.876544)  # the alert's startsAt
    # written and announced before the answer, not at the next tick
    assert rig.store.get_incident(inc.id) is not None
    assert rig.names() == ["opened"]
    (row,) = rig.store.alerts(status="firing")
    assert (row.fingerprint, row.incident_id) == ("fp-1", inc.id)
    assert row.body["labels"]["alertname"] == "EdgeDown"


def test_the_same_alert_twice_is_one_incident(rig: Rig) -> None:
    opened = rig.send(edge_down()).opened
    rig.clock.now += 300
    again = rig.send(edge_down(), edge_down())
    (inc,) = rig.open()
    assert again.updated == opened  # each incident listed once
    assert again.opened == []
    assert inc.last_seen_ts == T0 + 300
    assert rig.names() == ["opened"]


def test_two_alerts_of_one_name_on_one_appliance_are_one_incident(rig: Rig) -> None:
    first = rig.send(edge_down(fp="fp-1", device="eth0", severity="warning")).opened
    second = rig.send(edge_down(fp="fp-2", device="eth1", severity="critical")).updated
    (inc,) = rig.open()
    assert second == first
    assert inc.severity is Severity.CRITICAL  # raised by the second
    assert rig.names() == ["opened", "absorbed"]
    # the first resolving keeps it open; the last one resolves it
    r1 = rig.send(edge_down("resolved", fp="fp-1", device="eth0"))
    assert (r1.resolved, r1.updated) == ([], first)
    assert len(rig.open()) == 1
    r2 = rig.send(edge_down("resolved", fp="fp-2", device="eth1"))
    assert r2.resolved == first
    assert rig.open() == []
    events = [e.detail for e in rig.events]
    assert events[-1] == "alert fp-2 resolved"
    assert [e.event for e in rig.tracker.timeline(inc.id)] == [
        "opened",
        "opened",
        "absorbed",
        "alert resolved",
        "resolved",
    ]  # fmt: skip  (the opening, then its announcement, as for detection's incidents)


def test_each_incident_is_listed_once_under_what_happened_last(rig: Rig) -> None:
    both = rig.send(edge_down(fp="fp-1", device="eth0"), edge_down(fp="fp-2", device="eth1"))
    assert (len(both.opened), both.updated) == (1, [])
    ended = rig.send(
        edge_down("resolved", fp="fp-1", device="eth0"),
        edge_down("resolved", fp="fp-2", device="eth1"),
    )
    assert (ended.resolved, ended.updated) == (both.opened, [])


def test_a_resolved_alert_resolves_its_incident(rig: Rig) -> None:
    (inc_id,) = rig.send(edge_down()).opened
    rig.clock.now += 50
    result = rig.send(edge_down("resolved"))
    assert result.resolved == [inc_id]
    assert rig.open() == []
    gone = rig.tracker.get(inc_id)
    assert gone is not None
    assert (gone.status, gone.resolved_ts, gone.active) == (Status.RESOLVED, T0 + 50, False)
    assert rig.names() == ["opened", "resolved"]
    assert rig.store.alerts(status="firing") == []
    # Alertmanager repeats resolved alerts: nothing more happens
    assert rig.send(edge_down("resolved")).ignored == 1
    assert rig.names() == ["opened", "resolved"]


def test_firing_again_within_the_hold_down_reopens_as_a_flap(rig: Rig) -> None:
    (inc_id,) = rig.send(edge_down()).opened
    rig.send(edge_down("resolved"))
    rig.clock.now += 100
    assert rig.send(edge_down()).opened == [inc_id]
    (inc,) = rig.open()
    assert (inc.id, inc.flaps, inc.status, inc.reopened_ts) == (inc_id, 1, Status.OPEN, T0 + 100)
    assert rig.names() == ["opened", "resolved", "opened"]
    # past the hold-down (300 s) a new incident opens
    rig.send(edge_down("resolved"))
    rig.ticks(31)
    assert rig.send(edge_down()).opened != [inc_id]


def test_a_resolved_alert_never_seen_firing_is_ignored(rig: Rig) -> None:
    result = rig.send(edge_down("resolved", fp="fp-9"))
    assert result.ignored == 1
    assert rig.events == []


def test_alerts_left_out_by_match_are_ignored(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "s.db", intake_config=AlertmanagerConfig(match={"team": "cdn"}))
    try:
        result = rig.send(edge_down(team="db"), edge_down(fp="fp-2", team="cdn", device="x"))
        assert (result.ignored, len(result.opened)) == (1, 1)
        assert len(rig.open()) == 1
    finally:
        rig.close()


def test_an_alert_without_name_is_skipped_and_logged_once(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    nameless = edge_down(fp="fp-x")
    nameless["labels"] = {"appliance": "sea01-a01"}
    caplog.set_level("WARNING", logger="cdnops.intake")
    logging.getLogger("cdnops").propagate = True  # restored by the suite's conftest
    for _ in range(3):
        result = rig.send(nameless, edge_down())
        assert result.skipped == [{"fingerprint": "fp-x", "reason": "no alertname label"}]
    lines = [r.getMessage() for r in caplog.records if r.name == "cdnops.intake"]
    assert lines == ["alertmanager alert 'fp-x' not taken: no alertname label"]


def test_truncated_notifications_are_reported(rig: Rig) -> None:
    assert rig.intake.ingest(notification(edge_down(), truncated=4)).truncated == 4


def test_site_and_fleet_alerts(rig: Rig) -> None:
    rig.send(
        alert("OriginSlow", "firing", "fp-s", site="fra02"), alert("CdnBudget", fingerprint="fp-f")
    )
    by_scope = {i.scope: i for i in rig.open()}
    assert (by_scope[Scope.SITE].subject, by_scope[Scope.SITE].site) == ("fra02", "fra02")
    assert (by_scope[Scope.FLEET].subject, by_scope[Scope.FLEET].site) == ("fleet", "")


def test_an_appliance_alert_takes_the_site_of_the_inventory_once_ticked(rig: Rig) -> None:
    rig.tick()
    rig.send(edge_down())
    (inc,) = rig.open()
    assert inc.site == "sea01"


# --- the tick's logic --------------------------------------------------------------------


def test_alert_incidents_are_not_resolved_by_the_quiet_timer(rig: Rig) -> None:
    rig.send(edge_down(), alert("OriginSlow", fingerprint="fp-s", site="fra02"))
    rig.ticks(30)  # 300 s without any anomaly: five clean periods
    incs = rig.alert_incidents()
    assert len(incs) == 2
    assert all(i.active and i.quiet_since_ts is None for i in incs)
    assert rig.names() == ["opened", "opened"]


def test_detection_and_alert_incidents_of_one_appliance_live_side_by_side(rig: Rig) -> None:
    (alert_id,) = rig.send(edge_down()).opened
    rig.ticks(3, [anomaly("sea01-a01")])
    by_kind = {i.kind: i for i in rig.open()}
    assert set(by_kind) == {IncidentKind.ALERT, IncidentKind.METRIC}
    assert by_kind[IncidentKind.ALERT].id == alert_id
    assert by_kind[IncidentKind.ALERT].anomalies == ()  # not absorbed into the alert's
    assert by_kind[IncidentKind.METRIC].anomalies[0].metric == LATENCY
    # the anomaly clears: detection's incident resolves, the alert's stays
    rig.ticks(8)
    assert [i.id for i in rig.open()] == [alert_id]
    # and the alert resolving leaves detection alone
    rig.ticks(2, [anomaly("sea01-a01", since=rig.clock.now)])
    rig.send(edge_down("resolved"))
    assert [i.kind for i in rig.open()] == [IncidentKind.METRIC]


def test_site_correlation_neither_inhibits_nor_counts_alert_incidents(rig: Rig) -> None:
    # alert incidents on an appliance and on two sites, with the same name
    rig.send(
        edge_down(),
        alert("EdgeDown", "firing", "fp-s1", site="sea01"),
        alert("EdgeDown", "firing", "fp-s2", site="fra02"),
    )
    # a site outage in sea01: detection opens a site incident over its appliances
    outage = [anomaly(f"sea01-a{i:02d}") for i in range(6)]
    rig.ticks(3, outage)
    site = [i for i in rig.open() if i.scope is Scope.SITE and i.kind is IncidentKind.METRIC]
    assert len(site) == 1
    assert "sea01-a01" in site[0].members
    alerts = rig.alert_incidents()
    assert len(alerts) == 3
    assert all(i.parent is None for i in alerts)
    # two sites with an alert of one name make no fleet incident
    assert not [i for i in rig.open() if i.scope is Scope.FLEET]
    # the outage ends and resolves; the alert incidents are untouched
    rig.ticks(10)
    assert {i.kind for i in rig.open()} == {IncidentKind.ALERT}
    assert len(rig.open()) == 3


def test_alert_incidents_wait_the_group_wait_like_any_other(rig: Rig) -> None:
    rig.send(edge_down())
    assert rig.tracker.releasable() == []
    rig.tick()
    assert rig.tracker.releasable() == []
    rig.tick()  # 20 s after opening
    assert [i.family for i in rig.tracker.releasable()] == ["EdgeDown"]


def test_silences_apply_to_alert_incidents(rig: Rig) -> None:
    rig.tracker.silences.add(Silence("s1", T0 - 1, T0 + 25, "maintenance", labels={"team": "cdn"}))
    rig.send(edge_down(team="cdn"))
    (inc,) = rig.open()
    assert inc.silenced_by == "s1"
    assert rig.events == []  # a silenced incident stays off the bus
    rig.tick()
    assert rig.tracker.releasable() == []
    rig.tick()  # T0 + 20
    rig.tick()  # T0 + 30: the silence ended
    (inc,) = rig.open()
    assert inc.silenced_by is None
    assert rig.names() == ["opened"]
    assert [i.id for i in rig.tracker.releasable()] == [inc.id]


def test_a_playbook_with_kind_alert_matches_alert_incidents(rig: Rig) -> None:
    rig.send(edge_down(severity="critical", team="cdn"))
    rig.ticks(2, [anomaly("sea01-a02")])
    by_kind = {i.kind: i for i in rig.open()}
    trigger = Trigger(kind="alert", metric="EdgeDown", severity="critical", labels={"team": "cdn"})
    assert trigger_matches(trigger, by_kind[IncidentKind.ALERT])
    assert not trigger_matches(trigger, by_kind[IncidentKind.METRIC])
    assert trigger_matches(Trigger(kind="alert", metric="Edge*"), by_kind[IncidentKind.ALERT])
    assert not trigger_matches(
        Trigger(kind="alert", metric="CacheCold"), by_kind[IncidentKind.ALERT]
    )
    assert not trigger_matches(Trigger(kind="metric"), by_kind[IncidentKind.ALERT])
    assert not trigger_matches(Trigger(kind="alert", scope="site"), by_kind[IncidentKind.ALERT])


# --- restarts ----------------------------------------------------------------------------


def test_alert_incidents_survive_a_restart(rig: Rig) -> None:
    (inc_id,) = rig.send(edge_down(), alert("OriginSlow", fingerprint="fp-s", site="fra02")).opened[
        :1
    ]
    rig.restart()
    assert len(rig.alert_incidents()) == 2
    assert rig.send(edge_down()).updated == [inc_id]  # the same alert: the same incident
    rig.ticks(20)
    assert len(rig.alert_incidents()) == 2
    assert rig.send(edge_down("resolved")).resolved == [inc_id]
    assert [i.family for i in rig.open()] == ["OriginSlow"]


def test_a_restart_keeps_both_incidents_of_an_appliance_apart(rig: Rig) -> None:
    # detection's incident opens first, then the alert's: at load they share a slot
    rig.ticks(2, [anomaly("sea01-a01")])
    (alert_id,) = rig.send(edge_down()).opened
    (detect,) = [i for i in rig.open() if i.kind is IncidentKind.METRIC]
    rig.restart()
    assert {i.id for i in rig.open()} == {alert_id, detect.id}
    rig.ticks(2, [anomaly("sea01-a01")])
    assert {i.id for i in rig.open()} == {alert_id, detect.id}  # the anomaly went to detect's
    rig.ticks(8)  # detection's resolves by the quiet timer; the alert's does not
    assert [i.id for i in rig.open()] == [alert_id]
    rig.restart()
    rig.ticks(2, [anomaly("sea01-a01", since=rig.clock.now)])  # reopens detection's as a flap
    reopened = {i.kind: i for i in rig.open()}
    assert reopened[IncidentKind.METRIC].id == detect.id
    assert reopened[IncidentKind.ALERT].id == alert_id


def test_an_alert_incident_loaded_first_does_not_displace_detections(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "s.db")
    try:
        (alert_id,) = rig.send(edge_down()).opened
        rig.clock.now += TICK_S
        rig.ticks(2, [anomaly("sea01-a01")])
        ids = {i.id for i in rig.open()}
        assert len(ids) == 2
        rig.restart()
        assert {i.id for i in rig.open()} == ids
        rig.ticks(10)
        assert [i.id for i in rig.open()] == [alert_id]
    finally:
        rig.close()


def test_a_resolve_lost_between_the_two_writes_still_resolves(rig: Rig) -> None:
    # the incident was written, the alert row was not (the daemon stopped in between)
    (inc_id,) = rig.send(edge_down()).opened
    rig.store.put_alert("fp-1", inc_id, "resolved", T0, {})
    rig.restart()
    assert rig.send(edge_down("resolved")).resolved == [inc_id]
    assert rig.open() == []


def test_open_alert_incidents_are_counted_by_kind(rig: Rig) -> None:
    rig.send(edge_down(), alert("OriginSlow", fingerprint="fp-s", site="fra02"))
    value = rig.registry.get_sample_value(
        "cdnops_incidents_open", {"site": "fra02", "kind": "alert", "state": "waiting"}
    )
    assert value == 1
    rig.ticks(2)  # past the group wait
    active = {"site": "fra02", "kind": "alert", "state": "active"}
    assert rig.registry.get_sample_value("cdnops_incidents_open", active) == 1
    rig.send(alert("OriginSlow", "resolved", "fp-s", site="fra02"))
    assert rig.registry.get_sample_value("cdnops_incidents_open", active) == 0


async def test_alert_incidents_are_triaged(tmp_path: Path) -> None:
    config = IncidentsConfig(clean_period_s=60, group_wait_s=20)  # triage on
    rig = Rig(tmp_path / "s.db", config=config)
    try:
        rig.ticks(10)  # history to compare with
        (inc_id,) = rig.send(edge_down()).opened
        assert await rig.tracker.wait_triage(10) == 1
        assert "triaged" in [e.event for e in rig.tracker.timeline(inc_id)]
    finally:
        rig.close()


# --- expiry ------------------------------------------------------------------------------


@pytest.fixture
def expiring(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "e.db", intake_config=AlertmanagerConfig(expire_after_s=3600))
    yield r
    r.close()


def test_without_expiry_an_alert_never_sent_again_stays_open(rig: Rig) -> None:
    rig.send(edge_down())
    rig.clock.now += 30 * 86400
    assert rig.intake.expire() == []
    assert len(rig.alert_incidents()) == 1


def test_an_alert_not_repeated_within_expire_after_s_resolves(expiring: Rig) -> None:
    rig = expiring
    (inc_id,) = rig.send(edge_down(), edge_down(fp="fp-2", device="eth1")).opened
    rig.clock.now += 3000
    rig.send(edge_down())  # repeated: seen again
    rig.clock.now += 3000
    assert rig.intake.expire() == []  # 3000 s since the repeat
    rig.clock.now += 601
    assert rig.intake.expire() == [inc_id]
    assert rig.open() == []
    assert rig.tracker.timeline(inc_id)[-1].detail == (
        "no alert of it sent for 3600s (api.alertmanager.expire_after_s)"
    )
    assert {r.fingerprint: r.status for r in rig.store.alerts()} == {
        "fp-1": "resolved", "fp-2": "resolved"
    }  # fmt: skip
    assert rig.intake.expire() == []
    # firing again within the hold-down reopens it, as after any resolve
    rig.clock.now += 100
    assert rig.send(edge_down()).opened == [inc_id]
    (inc,) = rig.open()
    assert inc.flaps == 1


def test_a_notification_expires_other_stale_alert_incidents(expiring: Rig) -> None:
    (old,) = expiring.send(edge_down()).opened
    expiring.clock.now += 4000
    result = expiring.send(alert("OriginSlow", fingerprint="fp-s", site="fra02"))
    assert (result.resolved, len(result.opened)) == ([old], 1)
    assert [i.family for i in expiring.open()] == ["OriginSlow"]


def test_expiry_survives_a_restart(expiring: Rig) -> None:
    (inc_id,) = expiring.send(edge_down()).opened
    expiring.restart()
    expiring.clock.now += 3601
    assert expiring.intake.expire() == [inc_id]
