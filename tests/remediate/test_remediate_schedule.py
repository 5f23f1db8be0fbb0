"""Scheduled playbooks: cron lines, load errors, the scheduler's jobs and one firing's guards."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from remediate_helpers import (
    TOKEN,
    Frames,
    config,
    incident,
    inventory_of,
    playbooks,
    remediator,
    site_ids,
    tick_until_idle,
)

from cdnops.errors import ConfigError
from cdnops.incidents.model import Scope
from cdnops.incidents.silences import Silence, Silences
from cdnops.model import Appliance, Inventory
from cdnops.remediate.context import FrameIndex
from cdnops.remediate.loader import load_playbooks
from cdnops.remediate.schedule import next_fire, parse_cron
from cdnops.remediate.subjects import scheduled_subjects
from cdnops.sim.server import SimServer, SimSpec

UTC = dt.UTC


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    spec = SimSpec(appliances=16, sites=2, seed=5, action_delay_scale=0.01)
    async with SimServer(spec, token=TOKEN) as s:
        yield s


def nightly(site: str, line: str = "0 3 * * *") -> str:
    return f"""\
    name: nightly-diagnostics
    trigger: {{schedule: "{line}", site: {site}}}
    conditions: [appliance.reachable]
    steps:
      - action: collect_diagnostics
    """


@pytest.mark.parametrize(
    ("line", "after", "fires"),
    [
        ("*/15 * * * *", "2026-12-01T05:01", "2026-12-01T05:15"),
        ("0 3 * * *", "2026-12-01T05:00", "2026-12-02T03:00"),
        # classic cron: 0 is Sunday (APScheduler 3 alone would read Monday)
        ("30 2 * * 0", "2026-12-01T05:00", "2026-12-06T02:30"),
        ("0 4 * * 1-5", "2026-12-04T05:00", "2026-12-07T04:00"),
        ("0 4 * * sat-sun", "2026-12-01T05:00", "2026-12-05T04:00"),
    ],
)
def test_cron_lines_fire_as_classic_cron_in_utc(line: str, after: str, fires: str) -> None:
    start = dt.datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert next_fire(line, start) == dt.datetime.fromisoformat(fires).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 3 * *", 'cron line "0 3 * *" has 4 fields; expected 5: minute hour '
         "day-of-month month day-of-week"),
        ("0 3 * * fri-mon", 'cron line "0 3 * * fri-mon": day-of-week range "fri-mon" runs '
         "backwards; write it as two"),
        ("0 3 * * 9", 'cron line "0 3 * * 9": day-of-week "9" is not a day (0-7 or sun..sat)'),
    ],
)  # fmt: skip
def test_bad_cron_lines_say_why(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"day|fields") as info:
        parse_cron(line)
    assert str(info.value) == message


def test_bad_schedule_is_a_load_error_with_file_and_line(tmp_path: Path) -> None:
    text = """\
    name: bad-schedule
    trigger:
      schedule: "61 * * * *"
      kind: service_failed
    steps:
      - action: collect_diagnostics
    """
    with pytest.raises(ConfigError) as info:
        playbooks(tmp_path, text)
    file = tmp_path / "playbooks.yaml"
    assert [str(i) for i in info.value.issues] == [
        f'{file}:3:13: trigger.schedule: cron line "61 * * * *": Error validating expression '
        "'61': the last value (61) is higher than the maximum value (59)",
        f"{file}:4:9: trigger.kind: kind matches incidents, and a scheduled run has none; "
        "a schedule selects appliances by site and labels",
    ]


def test_subjects_are_the_appliances_site_and_labels_select(tmp_path: Path) -> None:
    inv = Inventory(
        (
            Appliance("a1", "ams01", "http://a1", {"tier": "edge"}),
            Appliance("a2", "ams01", "http://a2", {"tier": "mid"}),
            Appliance("b1", "bos01", "http://b1", {"tier": "edge"}),
        )
    )
    fi = FrameIndex(Frames(inv).frame())
    text = """\
    name: p
    trigger: {schedule: "0 * * * *", site: "ams*", labels: {tier: edge}}
    steps: [{action: collect_diagnostics}]
    """
    [pb] = playbooks(tmp_path, text).playbooks.values()
    assert scheduled_subjects(pb, fi) == ["a1"]


async def test_scheduler_registers_jobs_and_follows_reloads(sim: SimServer, tmp_path: Path) -> None:
    site, _ = site_ids(sim)
    pbs = playbooks(tmp_path, nightly(site))
    async with remediator(tmp_path / "s.db", pbs, config()) as (rem, _):
        before = dt.datetime.now(UTC)
        jobs = rem.scheduler.jobs()
        expected = {next_fire("0 3 * * *", before), next_fire("0 3 * * *", dt.datetime.now(UTC))}
        assert list(jobs) == ["nightly-diagnostics"]
        assert jobs["nightly-diagnostics"] in expected
        (tmp_path / "b").mkdir()
        rem.replace_playbooks(playbooks(tmp_path / "b", nightly(site, "*/10 * * * *")))
        now = dt.datetime.now(UTC)
        fires = rem.scheduler.jobs()["nightly-diagnostics"]
        assert fires is not None
        assert fires.minute % 10 == 0
        assert dt.timedelta(0) < fires - now <= dt.timedelta(minutes=10)
        (tmp_path / "c").mkdir()
        off = nightly(site).replace("    steps:", "    enabled: false\n    steps:")
        rem.replace_playbooks(playbooks(tmp_path / "c", off))
        assert rem.scheduler.jobs() == {}
        assert rem.scheduler.running
    assert not rem.scheduler.running


async def test_one_firing_acts_on_each_selected_appliance_through_the_guards(
    sim: SimServer, tmp_path: Path
) -> None:
    site, ids = site_ids(sim)
    frames = Frames(inventory_of(sim.inventory()))
    maint = Silence("maint-7", 0.0, 1e12, "disk swap", appliance=ids[1])
    cfg = config(max_concurrent=3)
    pbs = playbooks(tmp_path, nightly(site))
    async with remediator(tmp_path / "s.db", pbs, cfg, silences=Silences([maint])) as (rem, ev):
        rem.tick(frames.frame(down=(ids[0],)), [], [])
        started = rem.run_scheduled("nightly-diagnostics")
        assert [ex.subject for ex in started] == ids[2:5]
        assert {ex.incident.id for ex in started} == {f"schedule:{a}" for a in ids[2:5]}
        await tick_until_idle(rem, lambda: frames.frame(down=(ids[0],)))
        again = rem.run_scheduled("nightly-diagnostics")
        assert [ex.subject for ex in again] == ids[5:8]
        await tick_until_idle(rem, lambda: frames.frame(down=(ids[0],)))
    skipped = [(e.subject, e.detail["guard"], e.detail.get("not_tried")) for e in ev
               if e.event == "skipped"]  # fmt: skip
    assert skipped == [
        (ids[1], "silence", None),
        (ids[5], "concurrency", 2),
        (ids[1], "silence", None),
        *[(a, "cooldown", None) for a in ids[2:5]],
    ]
    fired = [e.detail for e in ev if e.event == "schedule_fired"]
    assert fired == [
        {"selected": 8, "started": 3, "skipped": {"conditions": 1, "silence": 1, "concurrency": 1}},
        {"selected": 8, "started": 3, "skipped": {"conditions": 1, "silence": 1, "cooldown": 3}},
    ]
    done = sorted(a for a, act in _actions(sim) if act == "collect_diagnostics")
    assert done == sorted(ids[2:8])


async def test_an_open_site_incident_inhibits_the_firing(sim: SimServer, tmp_path: Path) -> None:
    site, ids = site_ids(sim)
    frames = Frames(inventory_of(sim.inventory()))
    outage = incident(site, site, metric="origin_latency_p99_ms", scope=Scope.SITE)
    async with remediator(tmp_path / "s.db", playbooks(tmp_path, nightly(site)), config()) as (
        rem,
        ev,
    ):
        rem.tick(frames.frame(), [outage], [])
        assert rem.run_scheduled("nightly-diagnostics") == []
        assert rem.run_scheduled("no-such-playbook") == []
    reasons = {e.detail["reason"] for e in ev if e.event == "skipped"}
    assert reasons == {f"inhibited by {outage.id}"}
    assert len([e for e in ev if e.event == "skipped"]) == len(ids)
    assert _actions(sim) == []


def _actions(sim: SimServer) -> list[tuple[str, str]]:
    return [
        (str(r["appliance"]), str(r["action"]))
        for r in sim.truth
        if r["event"] == "action_received"
    ]


def test_the_playbooks_in_the_docs_load(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "playbooks.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    whole = [b for b in blocks if "\nsteps:" in b and ("\nname:" in b or b.startswith("name:"))]
    assert len(whole) == 2
    for i, block in enumerate(whole):
        (tmp_path / str(i)).mkdir()
        path = tmp_path / str(i) / "p.yaml"
        path.write_text(block, encoding="utf-8")
        assert len(load_playbooks([path])) == 1


async def test_a_due_job_runs_the_firing_on_the_loop(sim: SimServer, tmp_path: Path) -> None:
    site, ids = site_ids(sim)
    frames = Frames(inventory_of(sim.inventory()))
    pbs = playbooks(tmp_path, nightly(site))
    async with remediator(tmp_path / "s.db", pbs, config()) as (rem, ev):
        fired = asyncio.Event()
        rem.audit.bus.subscribe(lambda e: fired.set() if e.event == "schedule_fired" else None)
        rem.tick(frames.frame(), [], [])
        rem.scheduler.fire_now("nightly-diagnostics")
        await asyncio.wait_for(fired.wait(), 5)
        await tick_until_idle(rem, frames.frame)
        later = rem.scheduler.jobs()["nightly-diagnostics"]
    assert later is not None
    assert (later.hour, later.minute) == (3, 0)
    [summary] = [e.detail for e in ev if e.event == "schedule_fired"]
    assert summary["started"] == len(ids)
    assert sorted(a for a, _ in _actions(sim)) == sorted(ids)
