"""The daemon's HTTP server: /metrics, /metrics/appliances (opt-in), /healthz, /readyz, and
the JSON API under /api/v1 when one is given."""

from __future__ import annotations

import asyncio
import enum
import gzip
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import orjson
from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from cdnops.api.appliances import CONTENT_TYPE, render_appliances
from cdnops.model import DetectionResult, FleetFrame

log = logging.getLogger(__name__)

Snapshot = tuple[FleetFrame | None, DetectionResult | None]
LatestFn = Callable[[], Snapshot]
RenderFn = Callable[[FleetFrame | None, DetectionResult | None], bytes]

# Level 1: the body is highly repetitive, so it already shrinks ~10x at a fraction of level 6's CPU.
GZIP_LEVEL = 1
_JSON = "application/json"
API_PREFIX = "/api/v1"


class ServerState(enum.Enum):
    """Lifecycle of an HttpServer; it is entered at most once."""

    CREATED = "created"
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(slots=True)
class _Rendered:
    frame: FleetFrame | None
    result: DetectionResult | None
    plain: bytes
    gzipped: bytes | None = None  # compressed on first demand: not every scraper asks for it


class _AppliancesRenderer:
    """Renders the per-appliance page off the loop, once per (frame, result) snapshot.

    Concurrent scrapes of the same snapshot share one render; the render and its
    compression run in a worker thread so the loop keeps polling and answering probes.
    """

    def __init__(self, render: RenderFn) -> None:
        self._render = render
        self._lock = asyncio.Lock()
        self._cached: _Rendered | None = None

    async def get(
        self, frame: FleetFrame | None, result: DetectionResult | None, *, gzipped: bool
    ) -> bytes:
        """The page for this snapshot, plain or gzip-compressed."""
        async with self._lock:
            cached = self._cached
            if cached is None or cached.frame is not frame or cached.result is not result:
                started = time.perf_counter()
                plain = await asyncio.to_thread(self._render, frame, result)
                cached = self._cached = _Rendered(frame, result, plain)
                log.debug(
                    "event=appliances_rendered seq=%s bytes=%d duration_s=%.3f",
                    None if frame is None else frame.seq,
                    len(plain),
                    time.perf_counter() - started,
                )
            if not gzipped:
                return cached.plain
            if cached.gzipped is None:
                cached.gzipped = await asyncio.to_thread(gzip.compress, cached.plain, GZIP_LEVEL)
            return cached.gzipped


class HttpServer:
    """The daemon's HTTP endpoints; an async context manager listening once entered.

    Routes: `/metrics` (the registry, via prometheus-client's aiohttp handler),
    `/metrics/appliances` (only when `per_appliance`; 404 otherwise), `/healthz` (200 while
    the loop runs), `/readyz` (503 until `set_ready()`, then 200), and `/api/v1/...` when
    an API application is given (see `docs/api.md`).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry,
        per_appliance: bool,
        latest: LatestFn,
        render: RenderFn = render_appliances,
        shutdown_timeout_s: float = 5.0,
        api: web.Application | None = None,
        max_body_bytes: int = 1024**2,
    ) -> None:
        """Build the application; nothing listens until the server is entered.

        Args:
            host: the address to bind, e.g. `127.0.0.1`.
            port: the port to bind; 0 picks a free one, readable as `port` once entered.
            registry: the registry served on `/metrics`.
            per_appliance: whether to serve `/metrics/appliances`.
            latest: returns the latest (frame, detection result); called on the loop, so it
                must be cheap (return references, copy nothing).
            render: renders the per-appliance page; it runs in a worker thread.
            shutdown_timeout_s: how long requests in flight may take to finish on exit.
            api: the /api/v1 application (`cdnops.api.v1.build_api`), mounted when given.
            max_body_bytes: the largest request body taken (larger ones get 413).
        """
        self.host = host
        self.port = port
        self._latest = latest
        self._shutdown_timeout_s = shutdown_timeout_s
        self._state = ServerState.CREATED
        self._ready = False
        self._started_monotonic = time.monotonic()
        self._renderer = _AppliancesRenderer(render)
        self._app = web.Application(client_max_size=max_body_bytes)
        self._app.router.add_get("/metrics", make_aiohttp_handler(registry))
        if per_appliance:
            self._app.router.add_get("/metrics/appliances", self._appliances)
        self._app.router.add_get("/healthz", self._healthz)
        self._app.router.add_get("/readyz", self._readyz)
        if api is not None:
            self._app.add_subapp(API_PREFIX, api)
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> ServerState:
        """Where the server is in its lifecycle."""
        return self._state

    @property
    def ready(self) -> bool:
        """Whether `/readyz` answers 200."""
        return self._ready

    def set_ready(self) -> None:
        """Mark the daemon ready (first tick done): `/readyz` answers 200 from now on."""
        self._ready = True

    async def __aenter__(self) -> Self:
        if self._state is not ServerState.CREATED:
            raise RuntimeError(f"HttpServer cannot be entered twice (state: {self._state.value})")
        runner = web.AppRunner(
            self._app, access_log=None, shutdown_timeout=self._shutdown_timeout_s
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            self._state = ServerState.CLOSED
            raise OSError(
                exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._started_monotonic = time.monotonic()
        self._state = ServerState.RUNNING
        log.debug("event=http_listening host=%s port=%d", self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = ServerState.CLOSED
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        frame, _ = self._latest()
        body = {
            "status": "ok",
            "ready": self._ready,
            "uptime_s": round(time.monotonic() - self._started_monotonic, 3),
            "last_tick_seq": None if frame is None else frame.seq,
            "last_tick_ts": None if frame is None else frame.ts,
        }
        return web.Response(body=orjson.dumps(body), content_type=_JSON)

    async def _readyz(self, request: web.Request) -> web.Response:
        if self._ready:
            return web.Response(body=orjson.dumps({"status": "ready"}), content_type=_JSON)
        body = orjson.dumps({"status": "starting", "reason": "first tick not done"})
        return web.Response(status=503, body=body, content_type=_JSON)

    async def _appliances(self, request: web.Request) -> web.Response:
        frame, result = self._latest()
        gzipped = "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "")
        try:
            body = await self._renderer.get(frame, result, gzipped=gzipped)
        except ValueError as exc:
            log.error("event=appliances_render_failed error=%r", str(exc))
            return web.Response(status=500, text=f"cannot render appliance metrics: {exc}\n")
        headers = {hdrs.CONTENT_TYPE: CONTENT_TYPE}
        if gzipped:
            headers[hdrs.CONTENT_ENCODING] = "gzip"
        return web.Response(body=body, headers=headers)
