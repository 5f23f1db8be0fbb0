"""`SimServer`: the simulated fleet on one port, appliance `<id>` under `/a/<id>`."""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import orjson
import yaml

from cdnops.errors import ConfigError, Issue
from cdnops.sim.effects import RequestMode
from cdnops.sim.engine import Engine, TargetError
from cdnops.sim.faults import check_fault
from cdnops.sim.http import HttpProtocol, Request, Response, error, json_response
from cdnops.sim.render import PROM_CONTENT_TYPE, health_body, health_doc, prometheus_body
from cdnops.sim.scenario import Scenario
from cdnops.sim.topology import SimSpec
from cdnops.sim.truth import Record, TruthLog

log = logging.getLogger(__name__)
_HEALTH_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_METRICS_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: " + PROM_CONTENT_TYPE + b"\r\nContent-Length: %d\r\n\r\n"
)
TICK_S = 0.25  # background refresh, so scheduled faults start on time with no traffic


__all__ = ["SimServer", "SimSpec"]


class ServerState(enum.Enum):
    """Lifecycle of a SimServer."""

    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class SimServer:
    """The simulated fleet as an async context manager, listening once entered."""

    def __init__(
        self,
        spec: SimSpec,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        scenario: Scenario | None = None,
        truth_path: Path | None = None,
    ) -> None:
        if not token:
            raise ValueError("the simulator needs a non-empty bearer token")
        self.spec = spec
        self.host = host
        self.port = port
        self._token = b"Bearer " + token.encode()
        self._truth_log = TruthLog(truth_path)
        self.truth: list[Record] = self._truth_log.records
        self.engine = Engine(spec, self._truth_log)
        self._scenario = scenario or Scenario(())
        self._check_scenario(self._scenario)
        self._state = ServerState.NEW
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Transport] = set()

    @property
    def base_url(self) -> str:
        """`http://host:port` of the listening socket."""
        return f"http://{self.host}:{self.port}"

    def inventory(self) -> list[dict[str, object]]:
        """The contract's inventory entries for every simulated appliance."""
        topo = self.engine.topology
        return [
            {
                "id": aid,
                "site": topo.sites[topo.site_index[i]],
                "url": f"{self.base_url}/a/{aid}",
                "labels": dict(topo.labels[i]),
            }
            for i, aid in enumerate(topo.ids)
        ]

    def write_inventory(self, path: Path) -> None:
        """Write the inventory YAML (`appliances: [...]`), atomically.

        A reader that waits for the file never sees it half written: it appears complete.
        """
        text = yaml.safe_dump({"appliances": self.inventory()}, sort_keys=False)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    def inject(
        self, kind: str, target: str, *, duration_s: float | None = None, **params: object
    ) -> str:
        """Inject a fault now; returns its id.

        Raises:
            ValueError: unknown kind, bad parameter or unknown target (the message says which).
        """
        raw = {"kind": kind, "target": target, "duration_s": duration_s, "params": params}
        spec, problems = check_fault(raw)
        if spec is None:
            raise ValueError("; ".join(f"{p}: {m}" if p else m for p, m in problems))
        return self.engine.inject(spec).id

    def clear(self, fault_id: str) -> None:
        """End a fault now.

        Raises:
            KeyError: no fault with that id.
        """
        self.engine.clear(fault_id)

    def skip(self, sim_s: float) -> None:
        """Jump simulated time forward (faults, ramps and recoveries see it at once)."""
        self.engine.clock.skip(sim_s)
        self.engine.refresh(force=True)

    async def next_truth(
        self, predicate: Callable[[Record], bool], timeout_s: float = 5.0, *, start: int = 0
    ) -> Record:
        """Await the first truth record from index `start` that matches `predicate`.

        Raises:
            TimeoutError: none within `timeout_s`.
        """
        return await self._truth_log.wait_for(predicate, timeout_s=timeout_s, start=start)

    async def __aenter__(self) -> SimServer:
        if self._state is not ServerState.NEW:
            raise RuntimeError(f"SimServer cannot be entered when {self._state.value}")
        self._truth_log.open()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpProtocol(self.handle, self._connections, self.fast_get),
            self.host,
            self.port,
            backlog=4096,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        for spec in self._scenario.faults:
            self.engine.inject(spec, from_start=True)
        self._ticker = asyncio.create_task(self._tick(), name="cdnops.sim.tick")
        self._state = ServerState.RUNNING
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = ServerState.CLOSED
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        self.engine.actions.close()
        if self._server is not None:
            self._server.close()
            for transport in list(self._connections):
                transport.close()
            await self._server.wait_closed()
        self._truth_log.close()

    async def _tick(self) -> None:
        """Refresh the model periodically; an error is logged and the loop goes on."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.engine.refresh()
            except Exception:
                log.exception("simulator refresh failed")

    def _check_scenario(self, scenario: Scenario) -> None:
        issues = []
        for i, spec in enumerate(scenario.faults):
            try:
                self.engine.check_target(spec)
            except TargetError as exc:
                file, line, col = scenario.where[i] if i < len(scenario.where) else ("", 0, 0)
                issues.append(Issue(file or "scenario", line, col, f"faults[{i}].target", str(exc)))
        if issues:
            raise ConfigError(issues)

    # -- routing -------------------------------------------------------------------------

    def handle(self, req: Request) -> Response | asyncio.Future[Response | None] | None:
        """Route one request (called by the HTTP protocol)."""
        parts = req.path.split("/")
        if len(parts) >= 4 and parts[1] == "a":
            return self._appliance(req, parts)
        if len(parts) >= 3 and parts[1] == "_sim" and parts[2] == "faults":
            return self._control(req, parts[3:])
        return error(404, f"no such path {req.path}")

    def fast_get(self, path: str) -> bytes | None:
        """A healthy appliance's health or metrics answer, encoded; None: the general route."""
        if path.endswith("/health"):
            aid, head = path[3:-7], _HEALTH_HEAD
        elif path.endswith("/metrics"):
            aid, head = path[3:-8], _METRICS_HEAD
        else:
            return None
        engine = self.engine
        row = engine.topology.index.get(aid)
        if row is None or row in engine.down or row in engine.modes:
            return None
        doc = health_doc(engine.fleet, row, engine.refresh())
        body = orjson.dumps(doc) if head is _HEALTH_HEAD else prometheus_body(doc, None)
        return head % len(body) + body

    def _authorized(self, req: Request) -> bool:
        return hmac.compare_digest(req.headers.get(b"authorization", b""), self._token)

    def _appliance(
        self, req: Request, parts: list[str]
    ) -> Response | asyncio.Future[Response | None] | None:
        row = self.engine.topology.index.get(parts[2])
        if row is None:
            return error(404, f"unknown appliance {parts[2]!r}")
        if row in self.engine.down:
            return None  # rebooting: the connection just closes
        tail = parts[3:]
        if tail in (["health"], ["metrics"]):
            if req.method != "GET":
                return error(405, "use GET")
            return self._observe(row, tail[0] == "health")
        if len(tail) == 2 and tail[0] == "actions":
            if req.method == "POST":
                status, doc = self.engine.actions.submit(
                    row, tail[1], req.body, authorized=self._authorized(req)
                )
                return json_response(status, doc)
            if req.method == "GET":
                run = self.engine.actions.status(row, tail[1])
                if run is None:
                    return error(404, f"unknown action id {tail[1]!r}")
                return json_response(200, run.as_dict())
            return error(405, "use POST to start an action, GET for its status")
        return error(404, f"no such path {req.path}")

    def _observe(self, row: int, health: bool) -> Response | asyncio.Future[Response | None]:
        sim = self.engine.refresh()
        mode = self.engine.modes.get(row)
        if mode is None:
            doc = health_doc(self.engine.fleet, row, sim)
            if health:
                return Response(200, orjson.dumps(doc))
            return Response(200, prometheus_body(doc, None), PROM_CONTENT_TYPE)
        return self._odd_answer(row, health, mode)

    def _odd_answer(
        self, row: int, health: bool, mode: RequestMode
    ) -> Response | asyncio.Future[Response | None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Response | None] = loop.create_future()
        if mode.hung:
            return fut  # never resolved; cancelled when the client goes away
        doc = health_doc(self.engine.fleet, row, self.engine.clock.sim())
        if health:
            resp = Response(200, health_body(doc, mode.variant))
        else:
            resp = Response(200, prometheus_body(doc, mode.variant), PROM_CONTENT_TYPE)
        if mode.delay_s <= 0:
            return resp
        loop.call_later(mode.delay_s, _resolve, fut, resp)
        return fut

    def _control(self, req: Request, rest: list[str]) -> Response:
        if not self._authorized(req):
            return error(401, "missing or wrong bearer token")
        if not rest or rest == [""]:
            if req.method == "GET":
                faults = [self.engine.fault_dict(f) for f in self.engine.faults]
                return json_response(200, {"faults": faults})
            if req.method == "POST":
                return self._post_fault(req.body)
            return error(405, "use GET or POST")
        if len(rest) == 1 and req.method == "DELETE":
            try:
                fault = self.engine.clear(rest[0])
            except KeyError:
                return error(404, f"unknown fault {rest[0]!r}")
            return json_response(200, self.engine.fault_dict(fault))
        return error(405 if len(rest) == 1 else 404, "use DELETE /_sim/faults/<id>")

    def _post_fault(self, body: bytes) -> Response:
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error(400, f"body is not JSON: {exc}")
        spec, problems = check_fault(raw)
        if spec is None:
            return error(400, "; ".join(f"{p}: {m}" if p else m for p, m in problems))
        try:
            fault = self.engine.inject(spec)
        except TargetError as exc:
            return error(400, f"target: {exc}")
        return json_response(201, {"fault_id": fault.id, **self.engine.fault_dict(fault)})


def _resolve(fut: asyncio.Future[Response | None], resp: Response) -> None:
    if not fut.done():
        fut.set_result(resp)
