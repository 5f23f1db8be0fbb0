"""/api/v1 write auth: no token configured, missing, wrong and right tokens; the token stays
out of the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from api_v1 import TOKEN, running_api

from cdnops.api.auth import INVALID, MISSING, NOT_CONFIGURED, WriteAuth
from cdnops.config.secrets import Secret

SILENCE = {"site": "sea01", "duration_s": 600, "comment": "maintenance, ask ops"}


async def test_writes_without_a_configured_token_are_forbidden(tmp_path: Path) -> None:
    async with running_api(tmp_path, token=None) as api:
        status, body = await api.send("POST", "/silences", SILENCE, token="anything")
        assert (status, body) == (403, {"error": NOT_CONFIGURED})
        assert "api.write_token" in body["error"]
        assert api.tracker.silences.all() == []
        assert (await api.get("/silences"))[0] == 200  # reads stay open


@pytest.mark.parametrize(
    ("header", "status", "message", "challenge"),
    [
        (None, 401, MISSING, 'Bearer realm="cdnops"'),
        ("Basic dXNlcjpwdw==", 401, MISSING, 'Bearer realm="cdnops"'),
        ("Bearer ", 401, MISSING, 'Bearer realm="cdnops"'),
        ("Bearer wrong-token", 401, INVALID, 'Bearer realm="cdnops", error="invalid_token"'),
        (f"Bearer {TOKEN}x", 401, INVALID, 'Bearer realm="cdnops", error="invalid_token"'),
    ],
)
async def test_missing_or_wrong_token_is_refused(
    tmp_path: Path, header: str | None, status: int, message: str, challenge: str
) -> None:
    async with running_api(tmp_path) as api:
        headers = {"Authorization": header} if header is not None else {}
        url = f"{api.base}/silences"
        async with api.http.post(url, json=SILENCE, headers=headers) as resp:
            assert resp.status == status
            assert resp.headers["WWW-Authenticate"] == challenge
            assert await resp.json() == {"error": message}
        assert api.tracker.silences.all() == []


async def test_right_token_writes_and_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_api(tmp_path) as api:
        status, body = await api.send("POST", "/silences", SILENCE)
        assert status == 201
        assert body["site"] == "sea01"
        await api.send("POST", "/silences", SILENCE, token="a-wrong-guess")
        await api.send("POST", "/playbooks/nope/breaker/reset", {}, token=TOKEN)
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    assert TOKEN not in caplog.text
    assert "a-wrong-guess" not in caplog.text


def test_write_auth_swaps_tokens_and_hides_them() -> None:
    auth = WriteAuth(None)
    assert not auth.configured
    assert auth.check(f"Bearer {TOKEN}") is not None
    auth.set_token(Secret(TOKEN))
    assert auth.check(f"Bearer {TOKEN}") is None
    assert auth.check(f"bearer   {TOKEN}  ") is None
    assert TOKEN not in repr(vars(auth))  # only a digest is kept
    auth.set_token(Secret("next"))
    assert auth.check(f"Bearer {TOKEN}") is not None
    assert auth.check("Bearer next") is None
