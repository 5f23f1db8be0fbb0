"""A real /api/v1 on 127.0.0.1: HttpServer + Control over a real tracker, store and remediator."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from api_fleet import anomaly, detection
from fleetkit import Clock, build_frame
from prometheus_client import CollectorRegistry

from cdnops.api.auth import WriteAuth
from cdnops.api.server import HttpServer
from cdnops.api.v1 import build_api
from cdnops.config.incidents import IncidentsConfig
from cdnops.config.remediate import RemediateConfig
from cdnops.config.secrets import Secret
from cdnops.control import Control
from cdnops.incidents.events import EventBus, IncidentEvent
from cdnops.incidents.tracker import IncidentTracker
from cdnops.model import Anomaly, DetectionResult, Detector, FleetFrame
from cdnops.remediate.audit import RemediationBus
from cdnops.remediate.engine import Remediator
from cdnops.remediate.loader import PlaybookSet, load_playbooks
from cdnops.store.db import Store

TOKEN = "api-write-token-7f3a"
FLEET = [("sea01-a", "sea01"), ("sea01-b", "sea01"), ("ams02-a", "ams02"), ("ams02-b", "ams02")]

PLAYBOOKS = """\
playbooks:
  - name: restart-nginx
    trigger: {kind: service_failed, metric: "service:nginx"}
    steps:
      - action: restart_service
        params: {service: nginx}
  - name: escalate-hot
    trigger: {metric: cpu_util}
    steps:
      - action: escalate
        params: {reason: "{{ incident.subject }} is hot"}
"""


@dataclass
class Api:
    """The running API and the real parts behind it."""

    base: str
    http: aiohttp.ClientSession
    control: Control
    tracker: IncidentTracker
    store: Store
    remediator: Remediator
    auth: WriteAuth
    clock: Clock
    playbooks_dir: Path
    events: list[IncidentEvent] = field(default_factory=list)
    frame: FleetFrame | None = None
    result: DetectionResult | None = None

    def latest(self) -> tuple[FleetFrame | None, DetectionResult | None]:
        return self.frame, self.result

    def tick(self, *active: Anomaly, entered: bool = True, seq: int = 1) -> None:
        """One tick with these active anomalies, through the real tracker."""
        self.frame = build_frame(FLEET, seq=seq, ts=self.clock.now)
        self.result = detection(self.frame, active=active, entered=active if entered else ())
        self.tracker.update(self.frame, self.result)

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}{path}", params=params) as resp:
            return resp.status, await resp.json()

    async def send(
        self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN, **kw: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        headers |= kw.pop("headers", {})
        if "data" not in kw:
            kw["json"] = body
        async with self.http.request(method, f"{self.base}{path}", headers=headers, **kw) as resp:
            return resp.status, await resp.json()


def hot(appliance: str = "sea01-a", site: str = "sea01") -> Anomaly:
    """A cpu_util bounds anomaly."""
    return anomaly(appliance, site, Detector.BOUNDS)


@asynccontextmanager
async def running_api(
    tmp_path: Path, *, token: str | None = TOKEN, playbooks: str = PLAYBOOKS
) -> AsyncIterator[Api]:
    """The API on a free loopback port; everything on files under `tmp_path`."""
    clock = Clock()
    books = tmp_path / "playbooks"
    books.mkdir(exist_ok=True)
    (books / "main.yaml").write_text(textwrap.dedent(playbooks), encoding="utf-8")
    registry = CollectorRegistry()
    bus = EventBus(registry)
    config = IncidentsConfig.model_validate({"triage": {"enabled": False}, "group_wait_s": 0})
    auth = WriteAuth(Secret(token) if token is not None else None)
    with (
        Store(tmp_path / "cdnops.db") as store,
        IncidentTracker(config, store, bus, clock=clock) as tracker,
    ):
        holder: list[Api] = []
        control = Control(
            tracker,
            store,
            latest=lambda: holder[0].latest(),
            load_playbooks=lambda: load_playbooks([books]),
            clock=clock,
        )
        control.restore_silences()
        remediator = Remediator(
            RemediateConfig.model_validate({"dry_run": True}),
            load_playbooks([books]) if playbooks else PlaybookSet(),
            store,
            RemediationBus(registry),
            token="appliance-token",
            silence=control.add_silence,
            clock=clock,
        )
        async with (
            remediator,
            HttpServer(
                host="127.0.0.1",
                port=0,
                registry=registry,
                per_appliance=False,
                latest=lambda: holder[0].latest(),
                api=build_api(control, auth),
            ) as server,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
        ):
            control.remediator = remediator
            api = Api(
                f"http://127.0.0.1:{server.port}/api/v1",
                http,
                control,
                tracker,
                store,
                remediator,
                auth,
                clock,
                books,
            )
            holder.append(api)
            bus.subscribe(api.events.append)
            yield api
