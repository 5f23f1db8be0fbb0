"""Triage ranks the injected root cause first; it runs in the pool, off the tick."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
from fleetkit import LATENCY, T0, anomaly, make_inventory
from incstreams import TICK_S, Harness, make_incident

from cdnops.config.incidents import IncidentsConfig, TriageConfig
from cdnops.incidents.changepoint import earliest_change, fill_gaps, noise_sigma, ranks
from cdnops.incidents.history import HistoryWindow
from cdnops.incidents.model import Scope
from cdnops.incidents.triage import Triage, TriageJob, run_triage
from cdnops.model import CONTRACT_METRICS

M = {name: j for j, name in enumerate(CONTRACT_METRICS)}
BASE = np.array([0.4, 0.6, 40, 5e4, 0.97, 0.001, 80, 0.002, 50, 2e4, 0.02, 0.01])
TICKS = 120


def healthy(n: int, seed: int) -> np.ndarray:
    """(T, n, m) values with 2 % noise and a slow diurnal swing on traffic."""
    rng = np.random.default_rng(seed)
    v = BASE * (1 + 0.02 * rng.standard_normal((TICKS, n, len(BASE))))
    swing = 1 + 0.1 * np.sin(np.arange(TICKS) / 40.0)[:, None]
    for name in ("egress_gbps", "active_connections", "requests_total"):
        v[:, :, M[name]] *= swing
    return v


def disk_failure(n: int = 1) -> np.ndarray:
    """Disk errors rise at tick 80, latency 4 ticks (40 s) later, 5xx after that."""
    v = healthy(n, 1)
    v[80:, 0, M["disk_errors_total"]] += 3.0
    v[84:, 0, M[LATENCY]] += 120.0
    v[87:, 0, M["http_5xx_ratio"]] += 0.02
    return v


def memory_leak() -> np.ndarray:
    """Memory climbs from tick 30; latency and 5xx jump at 95; cpu (GC) after; an old blip."""
    v = healthy(1, 2)
    v[30:, 0, M["mem_util"]] += np.minimum(np.arange(TICKS - 30) * 0.006, 0.39)
    v[95:, 0, M[LATENCY]] += 150.0
    v[95:, 0, M["http_5xx_ratio"]] += 0.01
    v[97:, 0, M["cpu_util"]] += 0.2
    v[10:14, 0, M["temperature_c"]] += 8.0
    return v


def job(values: np.ndarray, trigger_tick: int) -> TriageJob:
    ts = (T0 + TICK_S * np.arange(len(values))).astype(np.float64)
    window = HistoryWindow(ts, values.astype(np.float32), ("sea01-a00",), CONTRACT_METRICS)
    return TriageJob("inc", LATENCY, ("sea01-a00",), float(ts[trigger_tick]), window, 5, 6.0)


def test_disk_failure_ranks_disk_errors_first() -> None:
    signals = run_triage(job(disk_failure(), 86))
    assert signals[0].metric == "disk_errors_total"
    assert signals[0].line.startswith(f"disk_errors_total rate rose 40 s before {LATENCY} (+"), (
        signals[0].line
    )
    assert signals[0].lead_s == 40.0
    assert signals[1].metric == "http_5xx_ratio"
    assert "30 s after" in signals[1].line
    assert LATENCY not in {s.metric for s in signals}


def test_memory_leak_ranks_memory_first() -> None:
    signals = run_triage(job(memory_leak(), 96))
    assert [s.metric for s in signals[:1]] == ["mem_util"]
    assert signals[0].line.startswith("mem_util rose ")
    assert signals[0].lead_s > 300
    assert signals[0].pearson > 0.5


def test_nothing_but_the_trigger_changed_gives_no_signal() -> None:
    values = healthy(1, 4)  # noise and the daily swing of traffic only
    values[90:, 0, M[LATENCY]] += 100.0
    assert run_triage(job(values, 92)) == []


def test_too_short_a_window_gives_nothing() -> None:
    assert run_triage(job(disk_failure()[:5], 2)) == []


def test_change_point_finds_a_step_and_ignores_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 200))
    x[1, 150:] += 2.0
    x[2, :] = np.nan
    filled, ok = fill_gaps(x)
    k, stat, shift = earliest_change(filled, noise_sigma(filled), 6.0)
    assert ok.tolist() == [True, True, False]
    assert k[0] == 0
    assert stat[0] == 0.0
    assert abs(int(k[1]) - 150) <= 2
    assert shift[1] > 1.5
    assert k[2] == 0


def test_ranks_average_ties() -> None:
    assert ranks(np.array([[3.0, 1.0, 1.0, 2.0, 1.0]])).tolist() == [[4.0, 1.0, 1.0, 3.0, 1.0]]


async def test_triage_runs_in_the_pool() -> None:
    with Triage(TriageConfig()) as triage:
        inc = replace(make_incident(subject="sea01-a00"), first_seen_ts=T0 + 86 * TICK_S)
        signals = await triage.triage(inc, job(disk_failure(), 86).window)
        pool_threads = [t.name for t in threading.enumerate() if t.name.startswith("cdnops.triage")]
    assert signals[0].metric == "disk_errors_total"
    assert pool_threads  # the work ran there, not on the event loop's thread


def feed(h: Harness, values: np.ndarray, sick: dict[int, list[str]], start: int) -> None:
    """Feed ticks of `values` (T, n, m); from tick `start` the given appliances are anomalous."""
    for t in range(len(values)):
        active = [anomaly(a, since=T0 + TICK_S * start) for a in sick.get(min(t, start), [])]
        h.tick(active if t >= start else [], values=values[t])


async def test_tracker_triages_an_opened_incident_off_the_tick(tmp_path: Path) -> None:
    h = Harness(make_inventory({"sea01": 1}), tmp_path / "s.db", IncidentsConfig())
    try:
        feed(h, disk_failure()[:87], {86: ["sea01-a00"]}, 86)
        await h.tracker.wait_triage(5.0)
        (inc,) = h.tracker.open_incidents()
        assert inc.triage[0].metric == "disk_errors_total"
        assert h.names() == ["opened", "triaged"]
        assert h.events[-1].detail == inc.triage[0].line
        stored = h.store.get_incident(inc.id)
        assert stored is not None
        assert stored.body["triage"][0]["metric"] == "disk_errors_total"
    finally:
        h.close()


async def test_site_incident_triage_looks_at_every_appliance(tmp_path: Path) -> None:
    values = healthy(5, 3)
    values[70:, :, M["tcp_retransmit_ratio"]] += 0.01  # the upstream link degrades first
    values[75:, :, M[LATENCY]] += 100.0
    h = Harness(make_inventory({"sea01": 5}), tmp_path / "s.db", IncidentsConfig())
    try:
        members = [f"sea01-a{i:02d}" for i in range(5)]
        feed(h, values[:80], {77: members}, 77)
        await h.tracker.wait_triage(5.0)
        (site,) = [i for i in h.tracker.open_incidents() if i.scope is Scope.SITE]
        top = site.triage[0]
        assert top.metric == "tcp_retransmit_ratio"
        assert top.line.startswith(f"{top.appliance}: tcp_retransmit_ratio rose 50 s before ")
        appliance_triaged = [
            i for i in h.tracker.open_incidents() if i.scope is Scope.APPLIANCE and i.triage
        ]
        assert appliance_triaged == []  # inhibited members are not triaged one by one
    finally:
        h.close()
