"""DaemonMetrics as seen over HTTP on /metrics: values, labels, cardinality, promtool."""

from __future__ import annotations

import time

import aiohttp
import numpy as np
import pytest
from api_fleet import anomaly, detection, key, parse_samples, promtool_check
from fleetkit import build_frame
from prometheus_client import CollectorRegistry

from cdnops.api.metrics import STATE_LABELS, DaemonMetrics, count_states
from cdnops.api.server import HttpServer
from cdnops.model import ApplianceState, Detector, PollFailure

FLEET = [("sea01-a", "sea01"), ("sea01-b", "sea01"), ("sea01-c", "sea01"), ("ams02-a", "ams02")]


async def scrape(registry: CollectorRegistry, http: aiohttp.ClientSession) -> tuple[str, str]:
    """(content type, body) of /metrics from a real server on a free port."""
    server = HttpServer(
        host="127.0.0.1",
        port=0,
        registry=registry,
        per_appliance=False,
        latest=lambda: (None, None),
    )
    async with server, http.get(f"http://127.0.0.1:{server.port}/metrics") as resp:
        assert resp.status == 200
        return resp.headers["Content-Type"], await resp.text()


def exercise(metrics: DaemonMetrics) -> None:
    """Drive every observer method once, as the daemon would."""
    metrics.poll_done("sea01", PollFailure.OK, 0.0005)
    metrics.poll_done("sea01", PollFailure.OK, 0.003)
    metrics.poll_done("sea01", PollFailure.TIMEOUT, 2.0)
    metrics.poll_done("ams02", PollFailure.BAD_BODY, 0.02)
    frame = build_frame(
        FLEET,
        failure=[PollFailure.OK, PollFailure.OK, PollFailure.TIMEOUT, PollFailure.OK],
        state=[ApplianceState.SERVING, ApplianceState.DRAINING, ApplianceState.SERVING, 0],
    )
    metrics.tick_done(frame, 0.004)
    hot = anomaly("sea01-a", "sea01", Detector.BOUNDS)
    metrics.detection_done(detection(frame, active=[hot], entered=[hot]))
    metrics.config_reloaded(False)
    metrics.frames_dropped(2)


async def test_poll_counts_by_site_and_result(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    metrics = DaemonMetrics(registry, instance="edge-1", version="1.2.3")
    exercise(metrics)
    content_type, text = await scrape(registry, http)
    s = parse_samples(text)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert s[key("cdnops_polls_total", site="sea01", result="ok")] == 2
    assert s[key("cdnops_polls_total", site="sea01", result="timeout")] == 1
    assert s[key("cdnops_polls_total", site="ams02", result="bad_body")] == 1
    assert s[key("cdnops_poll_failures_total", site="sea01", reason="timeout")] == 1
    assert s[key("cdnops_poll_failures_total", site="ams02", reason="bad_body")] == 1
    assert key("cdnops_poll_failures_total", site="sea01", reason="ok") not in s
    assert s[key("cdnops_poll_duration_seconds_count")] == 4
    assert s[key("cdnops_poll_duration_seconds_bucket", le="0.001")] == 1
    assert s[key("cdnops_poll_duration_seconds_bucket", le="0.005")] == 2
    assert s[key("cdnops_poll_duration_seconds_bucket", le="2.0")] == 4
    assert s[key("cdnops_poll_duration_seconds_sum")] == pytest.approx(2.0235)


async def test_tick_sets_appliances_by_site_and_state(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    metrics = DaemonMetrics(registry, instance="edge-1", version="1.2.3")
    exercise(metrics)
    s = parse_samples((await scrape(registry, http))[1])
    got = {
        (site, state): s[key("cdnops_appliances", site=site, state=state)]
        for site in ("sea01", "ams02")
        for state in STATE_LABELS
    }
    expected = dict.fromkeys(got, 0.0)
    # sea01-c failed its poll and ams02-a reported no state: both count as unreachable.
    expected |= {("sea01", "serving"): 1, ("sea01", "draining"): 1, ("sea01", "unreachable"): 1}
    expected |= {("ams02", "unreachable"): 1}
    assert got == expected
    assert s[key("cdnops_ticks_total")] == 1
    assert s[key("cdnops_tick_lag_seconds_count")] == 1
    assert s[key("cdnops_tick_lag_seconds_bucket", le="0.005")] == 1
    assert s[key("cdnops_tick_lag_seconds_bucket", le="0.001")] == 0
    assert s[key("cdnops_last_tick_timestamp_seconds")] == 1_764_547_200.0


async def test_site_leaving_the_inventory_leaves_no_series(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    metrics = DaemonMetrics(registry, instance="edge-1", version="1.2.3")
    metrics.tick_done(build_frame(FLEET), 0.0)
    metrics.tick_done(build_frame(FLEET[:3], seq=2), 0.0)
    text = (await scrape(registry, http))[1]
    assert 'site="ams02"' not in text
    s = parse_samples(text)
    assert s[key("cdnops_appliances", site="sea01", state="serving")] == 3
    assert s[key("cdnops_anomalies", site="sea01", detector="peers")] == 0


async def test_anomalies_active_and_entered(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    metrics = DaemonMetrics(registry, instance="edge-1", version="1.2.3")
    frame = build_frame(FLEET)
    metrics.tick_done(frame, 0.0)
    a = anomaly("sea01-a", "sea01", Detector.BOUNDS)
    b = anomaly("sea01-b", "sea01", Detector.BOUNDS, metric="mem_util")
    c = anomaly("ams02-a", "ams02", Detector.REACHABILITY, metric="reachability")
    metrics.detection_done(detection(frame, active=[a], entered=[a]))
    metrics.detection_done(detection(frame, active=[a, b, c], entered=[b, c]))
    s = parse_samples((await scrape(registry, http))[1])
    assert s[key("cdnops_anomalies", site="sea01", detector="bounds")] == 2
    assert s[key("cdnops_anomalies", site="ams02", detector="reachability")] == 1
    assert s[key("cdnops_anomalies", site="ams02", detector="bounds")] == 0
    assert s[key("cdnops_anomalies_entered_total", site="sea01", detector="bounds")] == 2
    assert s[key("cdnops_anomalies_entered_total", site="ams02", detector="reachability")] == 1


async def test_reloads_drops_and_build_info(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    before = time.time()
    metrics = DaemonMetrics(registry, instance="edge-1", version="1.2.3")
    s = parse_samples((await scrape(registry, http))[1])
    started = s[key("cdnops_config_last_reload_success_timestamp_seconds")]
    assert before <= started <= time.time()
    assert s[key("cdnops_config_reloads_total", result="ok")] == 0
    metrics.config_reloaded(False)
    metrics.config_reloaded(True)
    metrics.config_reloaded(True)
    metrics.frames_dropped(3)
    metrics.frames_dropped(0)
    s = parse_samples((await scrape(registry, http))[1])
    assert s[key("cdnops_config_reloads_total", result="ok")] == 2
    assert s[key("cdnops_config_reloads_total", result="failed")] == 1
    assert s[key("cdnops_config_last_reload_success_timestamp_seconds")] >= started
    assert s[key("cdnops_frames_dropped_total")] == 3
    assert s[key("cdnops_build_info", version="1.2.3", instance_name="edge-1")] == 1


def test_negative_drop_count_is_refused(registry: CollectorRegistry) -> None:
    metrics = DaemonMetrics(registry, instance="edge-1", version="1.2.3")
    with pytest.raises(ValueError, match=r"^frames_dropped: n must be >= 0, got -1$"):
        metrics.frames_dropped(-1)


async def test_no_per_appliance_label_on_metrics(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    exercise(DaemonMetrics(registry, instance="edge-1", version="1.2.3"))
    s = parse_samples((await scrape(registry, http))[1])
    label_names = {name for _, labels in s for name, _ in labels}
    assert label_names <= {"site", "result", "reason", "state", "detector", "le"} | {
        "version",
        "instance_name",
    }
    assert all(name.startswith("cdnops_") for name, _ in s)


def test_count_states_tolerates_corrupt_codes() -> None:
    frame = build_frame(
        FLEET,
        state=[ApplianceState.MAINTENANCE, 99, -3, ApplianceState.DRAINED],
    )
    counts = count_states(frame)
    by_site = {
        site: dict(zip(STATE_LABELS, row, strict=True))
        for site, row in zip(frame.sites, counts.tolist(), strict=True)
    }
    assert by_site["sea01"] == {
        "serving": 0,
        "draining": 0,
        "drained": 0,
        "maintenance": 1,
        "unreachable": 2,
    }
    assert by_site["ams02"]["drained"] == 1
    assert int(np.sum(counts)) == len(FLEET)


@pytest.mark.usefixtures("needs_promtool")
async def test_promtool_accepts_metrics(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    exercise(DaemonMetrics(registry, instance='edge "1"\\', version="1.2.3"))
    code, output = await promtool_check((await scrape(registry, http))[1])
    assert (code, output) == (0, "")


@pytest.mark.usefixtures("needs_promtool")
async def test_promtool_check_rejects_a_bad_exposition() -> None:
    code, output = await promtool_check("# HELP foo x\n# TYPE foo counter\nfoo 1\n")
    assert code != 0
    assert "counter metrics should have" in output


def test_daemon_metrics_is_a_poll_observer(registry: CollectorRegistry) -> None:
    from cdnops.poll.poller import PollObserver

    observer: PollObserver = DaemonMetrics(registry, instance="edge-1", version="1.2.3")
    observer.poll_done("sea01", PollFailure.REFUSED, 0.001)
    assert (
        registry.get_sample_value(
            "cdnops_poll_failures_total", {"site": "sea01", "reason": "refused"}
        )
        == 1
    )
