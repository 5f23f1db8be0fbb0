"""A loopback HTTP/1.1 appliance server for the poller's tests, one behaviour per appliance id."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable
from types import TracebackType

import orjson

from cdnops.model import Appliance, HealthFormat, Inventory

BIG = 70_000  # over the default 64 KiB cap


def health_doc(appliance_id: str, *, site: str, ts: float, requests: float) -> dict[str, object]:
    """The contract's health document."""
    return {
        "appliance": appliance_id,
        "site": site,
        "ts": ts,
        "uptime_s": 100.0,
        "state": "serving",
        "services": {"nginx": "running", "cache": "degraded", "bgp": "established"},
        "metrics": {
            "cpu_util": 0.5,
            "mem_util": 0.25,
            "requests_total": requests,
            "disk_errors_total": 3,
            "extra_untracked": 7,
        },
    }


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class FakeFleet:
    """Serves `GET /a/<id>/health` and `/a/<id>/metrics`; `behaviour[id]` picks the answer.

    Counters: `connections` accepted, `requests` per id, `max_in_flight` per id and overall.
    `gate` holds answers of `gated` appliances until set. Every answer advances the id's
    `ts` by 10 s and its `requests_total` by `step[id]` (default 1000).
    """

    def __init__(self) -> None:
        self.behaviour: dict[str, str] = {}
        self.step: dict[str, float] = {}
        self.total: Counter[str] = Counter()
        self.ts: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.all_in_flight = 0
        self.max_all_in_flight = 0
        self.connections = 0
        self.gate = asyncio.Event()
        self._changed = asyncio.Condition()
        self.arrived = asyncio.Event()
        self._stop = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FakeFleet:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self.gate.set()
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Wait until `predicate()` holds; it is re-checked whenever a request arrives or ends."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def drop_idle_connections(self) -> None:
        """Close every connection from the server side, as a keep-alive timeout would."""
        for w in list(self._writers):
            w.close()

    def url(self, appliance_id: str) -> str:
        """Base URL of an appliance."""
        return f"http://127.0.0.1:{self.port}/a/{appliance_id}"

    def inventory(
        self, ids: list[str], *, site: str = "s1", fmt: HealthFormat = HealthFormat.JSON
    ) -> Inventory:
        """An inventory of these ids on this server."""
        return Inventory(tuple(Appliance(i, site, self.url(i), health_format=fmt) for i in ids))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while not self._stop.is_set():
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                path = head.split(b" ", 2)[1].decode()
                _, _, appliance_id, endpoint = path.split("/", 3)
                if not await self._answer(appliance_id, endpoint, writer):
                    return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, aid: str, endpoint: str, writer: asyncio.StreamWriter) -> bool:
        self.requests[aid] += 1
        self.in_flight[aid] += 1
        self.all_in_flight += 1
        self.max_in_flight[aid] = max(self.max_in_flight[aid], self.in_flight[aid])
        self.max_all_in_flight = max(self.max_all_in_flight, self.all_in_flight)
        self.arrived.set()
        await self._notify()
        try:
            kind = self.behaviour.get(aid, "ok")
            if kind == "hang":
                await self._stop.wait()
                return False
            if kind == "gated":
                await self.gate.wait()
            if kind == "reset":
                return False
            writer.write(self._response(aid, endpoint, kind))
            await writer.drain()
            return kind not in ("close", "eof", "big_eof")
        finally:
            self.in_flight[aid] -= 1
            self.all_in_flight -= 1
            await self._notify()

    def _body(self, aid: str, endpoint: str) -> bytes:
        self.ts[aid] = self.ts.get(aid, 1_700_000_000.0) + 10.0
        self.total[aid] += self.step.get(aid, 1000.0)
        doc = health_doc(aid, site="s1", ts=self.ts[aid], requests=self.total[aid])
        if endpoint == "metrics":
            metrics: dict[str, float] = doc["metrics"]  # type: ignore[assignment]
            lines = ["# TYPE appliance_cpu_util gauge"]
            lines += [f"appliance_{k} {v}" for k, v in metrics.items()]
            return ("\n".join([*lines, "appliance_uptime_s 100", ""])).encode()
        return orjson.dumps(doc)

    def _response(self, aid: str, endpoint: str, kind: str) -> bytes:
        body = _BODIES[kind](aid) if kind in _BODIES else self._body(aid, endpoint)
        if kind == "500":
            return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"
        if kind == "garbage":
            return b"hello there\r\n\r\n"
        if kind in ("chunked", "big_chunked"):
            third = len(body) // 3 + 1
            chunks = [body[i : i + third] for i in range(0, len(body), third)]
            framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
        if kind in ("eof", "big_eof"):
            return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body
        extra = b"Connection: close\r\n" if kind == "close" else b""
        return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)


def _doc(aid: str, **changes: object) -> bytes:
    doc = health_doc(aid, site="s1", ts=1_700_000_000.0, requests=1.0)
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return orjson.dumps(doc)


_BODIES = {
    "big": lambda aid: b" " * BIG,
    "big_chunked": lambda aid: b" " * BIG,
    "big_eof": lambda aid: b" " * BIG,
    "invalid_json": lambda aid: b'{"appliance": ',
    "nan": lambda aid: _doc(aid).replace(b'"cpu_util":0.5', b'"cpu_util":NaN'),
    "wrong_types": lambda aid: _doc(aid, metrics={"cpu_util": "high"}),
    "bool_metric": lambda aid: _doc(aid, metrics={"cpu_util": True}),
    "metrics_list": lambda aid: _doc(aid, metrics=[1, 2]),
    "missing_state": lambda aid: _doc(aid, state=None),
    "wrong_id": lambda aid: _doc(aid, appliance="someone-else"),
    "bad_state": lambda aid: _doc(aid, state="on-fire"),
    "bad_service": lambda aid: _doc(aid, services={"nginx": "sleepy"}),
}
