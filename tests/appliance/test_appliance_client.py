"""ApplianceClient against a real loopback action server: start, status, wait, errors, token."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from cdnops.appliance.client import ActionStatus, ApplianceClient
from cdnops.errors import ApplianceError
from cdnops.model import Appliance

TOKEN = "s3cret-token-value"


class Secret:
    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"


@dataclass
class ActionServer:
    """Actions of the contract: 202 + id, 409 while one runs, status running N times then done."""

    url: str = ""
    running_polls: int = 2
    outcome: str = "succeeded"
    busy: bool = False
    seen_auth: list[str] = field(default_factory=list)
    bodies: list[object] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/a/{aid}/actions/{action}", self.start)
        app.router.add_get("/a/{aid}/actions/{action_id}", self.status)
        return app

    async def start(self, request: web.Request) -> web.Response:
        self.seen_auth.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "bad token"}, status=401)
        action = request.match_info["action"]
        if action not in ("reboot", "restart_service", "drain"):
            return web.json_response({"error": f"unknown action {action}"}, status=400)
        if self.busy:
            return web.json_response({"error": "another action is running"}, status=409)
        self.bodies.append(await request.json())
        action_id = f"act-{len(self.bodies)}-{action}"
        self.polls[action_id] = 0
        return web.json_response({"action_id": action_id, "status": "accepted"}, status=202)

    async def status(self, request: web.Request) -> web.Response:
        action_id = request.match_info["action_id"]
        if action_id not in self.polls:
            return web.json_response({"error": "no such action"}, status=404)
        self.polls[action_id] += 1
        done = self.polls[action_id] > self.running_polls
        return web.json_response(
            {
                "action_id": action_id,
                "action": action_id.split("-", 2)[2],
                "status": self.outcome if done else "running",
                "detail": "done" if done else "in progress",
            }
        )


@pytest.fixture
async def server() -> AsyncIterator[ActionServer]:
    state = ActionServer()
    runner = web.AppRunner(state.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def appliance(server: ActionServer) -> Appliance:
    return Appliance("sea01-oca-003", "sea01", f"{server.url}/a/sea01-oca-003")


async def test_start_follow_and_finish_an_action(server: ActionServer) -> None:
    async with ApplianceClient(Secret(TOKEN), timeout_s=2) as client:
        a = appliance(server)
        action_id = await client.start_action(a, "restart_service", {"service": "nginx"})
        first = await client.action_status(a, action_id)
        final = await client.wait_action(a, action_id, timeout_s=5, poll_interval_s=0.01)
    assert action_id == "act-1-restart_service"
    assert first == ActionStatus(action_id, "restart_service", "running", "in progress")
    assert not first.done
    assert final == ActionStatus(action_id, "restart_service", "succeeded", "done")
    assert final.done
    assert server.bodies == [{"service": "nginx"}]
    assert server.seen_auth == [f"Bearer {TOKEN}"]


async def test_plain_string_token_works(server: ActionServer) -> None:
    async with ApplianceClient(TOKEN) as client:
        assert await client.start_action(appliance(server), "drain", {}) == "act-1-drain"


async def test_failed_action_is_returned_not_raised(server: ActionServer) -> None:
    server.outcome = "failed"
    async with ApplianceClient(TOKEN) as client:
        a = appliance(server)
        action_id = await client.start_action(a, "reboot", {})
        final = await client.wait_action(a, action_id, timeout_s=5, poll_interval_s=0.01)
    assert final.status == "failed"


@pytest.mark.parametrize(
    ("token", "action", "busy", "status", "text"),
    [
        ("wrong", "reboot", False, 401, "bad token"),
        (TOKEN, "explode", False, 400, "unknown action explode"),
        (TOKEN, "reboot", True, 409, "another action is running"),
    ],
)
async def test_error_answers_raise_appliance_error_with_context(
    server: ActionServer, token: str, action: str, busy: bool, status: int, text: str
) -> None:
    server.busy = busy
    async with ApplianceClient(Secret(token)) as client:
        with pytest.raises(ApplianceError) as info:
            await client.start_action(appliance(server), action, {})
    url = f"{server.url}/a/sea01-oca-003/actions/{action}"
    assert str(info.value) == (
        f"action {action} on appliance sea01-oca-003 (site sea01) failed: "
        f"HTTP {status}: {text} [{url}]"
    )


async def test_wait_action_raises_at_the_deadline(server: ActionServer) -> None:
    server.running_polls = 10_000
    async with ApplianceClient(TOKEN) as client:
        a = appliance(server)
        action_id = await client.start_action(a, "reboot", {})
        with pytest.raises(ApplianceError, match=r"still running after 0\.1s"):
            await client.wait_action(a, action_id, timeout_s=0.1, poll_interval_s=0.02)


async def test_unreachable_appliance_raises_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = ApplianceClient(Secret(TOKEN), timeout_s=1)
    a = Appliance("x", "s1", "http://127.0.0.1:1/a/x")
    async with client:
        with pytest.raises(ApplianceError) as info:
            await client.start_action(a, "reboot", {})
    text = f"{info.value} {info.value!r} {client!r} {caplog.text}"
    assert "action reboot on appliance x (site s1) failed: no answer" in str(info.value)
    assert TOKEN not in text
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


async def test_client_must_be_entered() -> None:
    client = ApplianceClient(TOKEN)
    with pytest.raises(RuntimeError, match="not open"):
        await client.start_action(Appliance("x", "s", "http://127.0.0.1:1/a/x"), "reboot", {})


async def test_wait_action_stops_at_an_error_answer(server: ActionServer) -> None:
    async with ApplianceClient(TOKEN) as client:
        with pytest.raises(ApplianceError, match="HTTP 404: no such action"):
            await client.wait_action(
                appliance(server), "act-404", timeout_s=5, poll_interval_s=0.01
            )
