"""HttpServer on a loopback port: probes, /metrics/appliances content, escaping, off-loop render."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Callable

import aiohttp
import numpy as np
import pytest
from api_fleet import detection, key, parse_samples, promtool_check
from fleetkit import build_frame
from prometheus_client import CollectorRegistry

from cdnops.api.appliances import render_appliances
from cdnops.api.server import HttpServer, ServerState
from cdnops.model import CONTRACT_METRICS, DetectionResult, FleetFrame, PollFailure

FLEET = [("sea01-a", "sea01"), ("sea01-b", "sea01"), ("ams02-a", "ams02")]
Latest = Callable[[], tuple[FleetFrame | None, DetectionResult | None]]


def make_server(
    registry: CollectorRegistry,
    latest: Latest = lambda: (None, None),
    *,
    per_appliance: bool = True,
    **kwargs: object,
) -> HttpServer:
    return HttpServer(
        host="127.0.0.1",
        port=0,
        registry=registry,
        per_appliance=per_appliance,
        latest=latest,
        **kwargs,  # type: ignore[arg-type]
    )


async def fetch(
    http: aiohttp.ClientSession, server: HttpServer, path: str, **kwargs: object
) -> tuple[int, dict[str, str], str]:
    async with http.get(f"http://127.0.0.1:{server.port}{path}", **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, dict(resp.headers), await resp.text()


async def test_healthz_and_readyz(registry: CollectorRegistry, http: aiohttp.ClientSession) -> None:
    frame = build_frame(FLEET, seq=7)
    async with make_server(registry, lambda: (frame, None)) as server:
        assert server.port > 0
        status, headers, body = await fetch(http, server, "/healthz")
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        health = json.loads(body)
        assert health["status"] == "ok"
        assert health["ready"] is False
        assert health["last_tick_seq"] == 7
        status, _, body = await fetch(http, server, "/readyz")
        assert (status, body) == (503, '{"status":"starting","reason":"first tick not done"}')
        server.set_ready()
        status, _, body = await fetch(http, server, "/readyz")
        assert (status, body) == (200, '{"status":"ready"}')


async def test_appliances_route_is_opt_in(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    frame = build_frame(FLEET)
    async with make_server(registry, lambda: (frame, None), per_appliance=False) as server:
        status, _, _ = await fetch(http, server, "/metrics/appliances")
        assert status == 404
        status, _, _ = await fetch(http, server, "/metrics")
        assert status == 200


async def test_appliances_content(registry: CollectorRegistry, http: aiohttp.ClientSession) -> None:
    valid = np.ones((3, len(CONTRACT_METRICS)), dtype=np.bool_)
    valid[1, 0] = False  # sea01-b reported no cpu_util
    valid[2, :] = False  # ams02-a failed its poll
    failure = [PollFailure.OK, PollFailure.OK, PollFailure.REFUSED]
    frame = build_frame(FLEET, valid=valid, failure=failure)
    scores = np.full(frame.values.shape, np.nan)
    scores[0, 1] = 0.123456
    result = detection(frame, scores=scores)
    async with make_server(registry, lambda: (frame, result)) as server:
        status, headers, text = await fetch(http, server, "/metrics/appliances")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    s = parse_samples(text)
    assert s[key("cdnops_appliance_up", appliance="sea01-a", site="sea01")] == 1
    assert s[key("cdnops_appliance_up", appliance="ams02-a", site="ams02")] == 0
    metric = "cdnops_appliance_metric"
    assert s[key(metric, appliance="sea01-b", site="sea01", metric="mem_util")] == 101
    assert s[key(metric, appliance="sea01-a", site="sea01", metric="nic_errors_total")] == 11
    assert key(metric, appliance="sea01-b", site="sea01", metric="cpu_util") not in s
    assert not any(labels and ("appliance", "ams02-a") in labels for n, labels in s if n == metric)
    assert sum(1 for n, _ in s if n == metric) == 2 * len(CONTRACT_METRICS) - 1
    score = "cdnops_appliance_anomaly_score"
    assert s[key(score, appliance="sea01-a", site="sea01", metric="mem_util")] == 0.1235
    assert sum(1 for n, _ in s if n == score) == 1


async def test_label_values_are_escaped(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    site = 'pop "north"\\\nrack'
    frame = build_frame([("edge-1", site)], metrics=('odd"metric',))
    async with make_server(registry, lambda: (frame, None)) as server:
        _, _, text = await fetch(http, server, "/metrics/appliances")
    assert 'site="pop \\"north\\"\\\\\\nrack"' in text
    s = parse_samples(text)
    assert (
        s[key("cdnops_appliance_metric", appliance="edge-1", site=site, metric='odd"metric')] == 0
    )


@pytest.mark.usefixtures("needs_promtool")
async def test_promtool_accepts_appliances(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    frame = build_frame([*FLEET, ("edge-1", 'pop "x"\\')])
    scores = np.random.default_rng(1).random(frame.values.shape)
    result = detection(frame, scores=scores)
    async with make_server(registry, lambda: (frame, result)) as server:
        _, _, text = await fetch(http, server, "/metrics/appliances")
    assert "cdnops_appliance_anomaly_score{" in text
    assert await promtool_check(text) == (0, "")


async def test_appliances_before_first_tick_is_headers_only(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    async with make_server(registry) as server:
        status, _, text = await fetch(http, server, "/metrics/appliances")
    assert status == 200
    assert parse_samples(text) == {}
    assert "# TYPE cdnops_appliance_up gauge\n" in text


async def test_scores_of_another_shape_are_left_out(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    frame = build_frame(FLEET)
    stale = detection(build_frame(FLEET[:2]), scores=np.zeros((2, len(CONTRACT_METRICS))))
    async with make_server(registry, lambda: (frame, stale)) as server:
        _, _, text = await fetch(http, server, "/metrics/appliances")
    assert "cdnops_appliance_anomaly_score{" not in text
    assert "cdnops_appliance_metric{" in text


async def test_gzip_on_request(registry: CollectorRegistry, http: aiohttp.ClientSession) -> None:
    frame = build_frame(FLEET)
    async with make_server(registry, lambda: (frame, None)) as server:
        _, headers, zipped = await fetch(
            http, server, "/metrics/appliances", headers={"Accept-Encoding": "gzip"}
        )
        _, plain_headers, plain = await fetch(
            http, server, "/metrics/appliances", headers={"Accept-Encoding": "identity"}
        )
    assert headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain_headers
    assert zipped == plain == render_appliances(frame, None).decode()


async def test_inconsistent_frame_answers_500(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    good = build_frame(FLEET)
    bad = build_frame(FLEET[:2])
    broken = dataclasses.replace(good, inventory=bad.inventory)
    async with make_server(registry, lambda: (broken, None)) as server:
        status, _, text = await fetch(http, server, "/metrics/appliances")
        health, _, _ = await fetch(http, server, "/healthz")
    assert status == 500
    assert text == (
        "cannot render appliance metrics: FleetFrame seq=1: values has shape (3, 12), "
        "expected (2, 12) for 2 appliances x 12 metrics\n"
    )
    assert health == 200


async def test_big_render_runs_off_the_loop(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    """While a 20,000-appliance render is held mid-way, /healthz still answers."""
    n = 20_000
    frame = build_frame([(f"s{i % 50:02d}-a{i:05d}", f"s{i % 50:02d}") for i in range(n)])
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    release = threading.Event()
    render_threads: list[int] = []

    def held_render(f: FleetFrame | None, r: DetectionResult | None) -> bytes:
        render_threads.append(threading.get_ident())
        loop.call_soon_threadsafe(started.set)
        # Bounded, so a render wrongly run on the loop fails the test instead of hanging it.
        assert release.wait(timeout=15)
        return render_appliances(f, r)

    async with make_server(registry, lambda: (frame, None), render=held_render) as server:
        scrape = asyncio.create_task(fetch(http, server, "/metrics/appliances"))
        await asyncio.wait_for(started.wait(), timeout=15)
        status, _, _ = await asyncio.wait_for(fetch(http, server, "/healthz"), timeout=5)
        assert status == 200
        assert not scrape.done()
        release.set()
        status, _, text = await asyncio.wait_for(scrape, timeout=30)
    assert status == 200
    assert len(render_threads) == 1
    assert render_threads[0] != threading.get_ident()
    assert text.count("\ncdnops_appliance_up{") == n
    assert text.count("\ncdnops_appliance_metric{") == n * len(CONTRACT_METRICS)


async def test_concurrent_scrapes_share_one_render(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    frame = build_frame(FLEET)
    calls: list[int] = []

    def counting_render(f: FleetFrame | None, r: DetectionResult | None) -> bytes:
        calls.append(1)
        return render_appliances(f, r)

    async with make_server(registry, lambda: (frame, None), render=counting_render) as server:
        bodies = await asyncio.gather(
            *(fetch(http, server, "/metrics/appliances") for _ in range(5))
        )
    assert len({b[2] for b in bodies}) == 1
    assert calls == [1]


async def test_lifecycle_misuse_and_busy_port(registry: CollectorRegistry) -> None:
    server = make_server(registry)
    seen = [server.state]
    async with server:
        seen.append(server.state)
        with pytest.raises(
            RuntimeError, match=r"^HttpServer cannot be entered twice \(state: running\)$"
        ):
            await server.__aenter__()
        busy = HttpServer(
            host="127.0.0.1",
            port=server.port,
            registry=registry,
            per_appliance=False,
            latest=lambda: (None, None),
        )
        with pytest.raises(
            OSError, match=rf"^\[Errno \d+\] cannot listen on 127.0.0.1:{server.port}: "
        ):
            await busy.__aenter__()
        assert busy.state is ServerState.CLOSED
    seen.append(server.state)
    assert seen == [ServerState.CREATED, ServerState.RUNNING, ServerState.CLOSED]
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), timeout=5)


async def test_non_finite_values_are_left_out(
    registry: CollectorRegistry, http: aiohttp.ClientSession
) -> None:
    values = np.array([[np.inf, 1.5], [-np.inf, 2.5e-7]])
    frame = build_frame(FLEET[:2], metrics=("a", "b"), values=values)
    async with make_server(registry, lambda: (frame, None)) as server:
        _, _, text = await fetch(http, server, "/metrics/appliances")
    s = parse_samples(text)
    got = {
        dict(labels)["metric"]: v
        for n, labels in s
        if n == "cdnops_appliance_metric"
        for v in [s[(n, labels)]]
        if dict(labels)["appliance"] == "sea01-b"
    }
    assert got == {"b": 2.5e-7}
    assert sum(1 for n, _ in s if n == "cdnops_appliance_metric") == 2
