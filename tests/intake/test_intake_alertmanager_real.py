"""A real Alertmanager sends its webhook to the intake over HTTP: fire, repeat, resolve."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from am_process import Alertmanager, binary, config, running
from intake_helpers import Rig

from cdnops.incidents.model import IncidentKind, Scope, Severity, Status
from cdnops.intake.alertmanager import IntakeError, IntakeResult

TOKEN = "am-intake-token"
PATH = "/api/v1/alerts/alertmanager"
WAIT_S = 15.0

pytestmark = pytest.mark.skipif(binary() is None, reason="prometheus-alertmanager not installed")


@dataclass
class Receiver:
    """The daemon's side of the webhook: bearer token, JSON body, the intake."""

    rig: Rig
    results: asyncio.Queue[IntakeResult] = field(default_factory=asyncio.Queue)
    refused: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.refused.append("unauthorized")
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            result = self.rig.intake.ingest(await request.json())
        except IntakeError as exc:
            self.refused.append(str(exc))
            return web.json_response({"error": str(exc)}, status=400)
        await self.results.put(result)
        return web.json_response(result.to_json())

    async def until(self, ok: Callable[[IntakeResult], bool]) -> IntakeResult:
        """The first notification (from now on) for which `ok` holds."""
        async with asyncio.timeout(WAIT_S):
            while not ok(result := await self.results.get()):
                pass
        return result


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    rig = Rig(tmp_path / "state.db")
    r = Receiver(rig)
    app = web.Application()
    app.router.add_post(PATH, r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    r.url = f"http://127.0.0.1:{port}{PATH}"
    try:
        yield r
    finally:
        await runner.cleanup()
        rig.close()


@pytest.fixture
async def am(receiver: Receiver, tmp_path: Path) -> AsyncIterator[Alertmanager]:
    token_file = tmp_path / "am" / "cdnops.token"
    token_file.parent.mkdir()
    token_file.write_text(TOKEN, encoding="utf-8")
    token_file.chmod(0o600)
    # a 1 s repeat: Alertmanager sends the still-firing alert again within the test
    cfg = config(receiver.url, token_file, repeat_interval="1s")
    async with running(tmp_path / "am", cfg) as manager:
        yield manager


EDGE_DOWN = {"alertname": "EdgeDown", "appliance": "sea01-a01", "site": "sea01",
             "severity": "critical", "team": "cdn"}  # fmt: skip


async def test_fire_repeat_resolve_through_a_real_alertmanager(
    am: Alertmanager, receiver: Receiver
) -> None:
    rig = receiver.rig
    await am.post_alert(EDGE_DOWN, annotations={"summary": "sea01-a01 stopped serving"})
    first = await receiver.until(lambda r: bool(r.opened))
    (inc_id,) = first.opened
    (inc,) = rig.open()
    assert (inc.id, inc.scope, inc.subject, inc.kind, inc.metric) == (
        inc_id, Scope.APPLIANCE, "sea01-a01", IncidentKind.ALERT, "EdgeDown"
    )  # fmt: skip
    assert (inc.site, inc.severity, inc.labels["team"]) == ("sea01", Severity.CRITICAL, "cdn")
    assert inc.active
    (row,) = rig.store.alerts(status="firing")
    assert row.incident_id == inc_id
    assert len(row.fingerprint) == 16  # Alertmanager's own fingerprint
    timeline = rig.tracker.timeline(inc_id)
    assert timeline[0].detail == f"alert {row.fingerprint}: sea01-a01 stopped serving"

    # the repeat: the same alert again is the same incident
    again = await receiver.until(lambda r: bool(r.updated))
    assert (again.opened, again.updated) == ([], [inc_id])
    assert [i.id for i in rig.open()] == [inc_id]

    # the alert ends: Alertmanager sends it resolved, and the incident resolves
    await am.post_alert(EDGE_DOWN, resolved=True)
    done = await receiver.until(lambda r: bool(r.resolved))
    assert done.resolved == [inc_id]
    assert rig.open() == []
    resolved = rig.tracker.get(inc_id)
    assert resolved is not None
    assert resolved.status is Status.RESOLVED
    assert [r.status for r in rig.store.alerts()] == ["resolved"]
    assert rig.names() == ["opened", "resolved"]
    assert receiver.refused == []  # every request carried the token from credentials_file


async def test_alerts_of_a_site_and_of_the_fleet(am: Alertmanager, receiver: Receiver) -> None:
    await am.post_alert({"alertname": "OriginSlow", "site": "fra02", "severity": "warning"})
    await am.post_alert({"alertname": "CdnBudget"})
    subjects: dict[Scope, str] = {}
    async with asyncio.timeout(WAIT_S):
        while len(subjects) < 2:
            await receiver.until(lambda r: bool(r.opened))
            subjects = {i.scope: i.subject for i in receiver.rig.open()}
    assert subjects == {Scope.SITE: "fra02", Scope.FLEET: "fleet"}
