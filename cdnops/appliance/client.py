"""Client for the appliance contract's actions: start one, read its status, wait for the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol
from urllib.parse import quote

import aiohttp
import orjson

from cdnops import __version__
from cdnops.errors import ApplianceError
from cdnops.model import Appliance

ACTIONS = frozenset(
    {"restart_service", "purge_cache", "drain", "undrain", "reboot", "collect_diagnostics"}
)
DONE_STATUSES = frozenset({"succeeded", "failed"})
_ERROR_TEXT_CHARS = 300


class SecretLike(Protocol):
    """A token wrapper whose repr hides the value."""

    def reveal(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ActionStatus:
    """An action as the appliance reports it."""

    action_id: str
    action: str
    status: str  # running | succeeded | failed
    detail: str

    @property
    def done(self) -> bool:
        """True once the action succeeded or failed."""
        return self.status in DONE_STATUSES


class ActionRequestError(ApplianceError):
    """An action request failed; every field an operator needs, never the token."""

    def __init__(
        self,
        appliance: Appliance,
        url: str,
        action: str,
        status: int | None,
        detail: str,
    ) -> None:
        self.appliance_id = appliance.id
        self.site = appliance.site
        self.url = url
        self.action = action
        self.status = status
        self.detail = detail
        answer = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(
            f"action {action} on appliance {appliance.id} (site {appliance.site}) failed: "
            f"{answer}: {detail} [{url}]"
        )


class ApplianceClient:
    """Async context manager owning one aiohttp session for action requests.

    Args:
        token: the fleet's bearer token, a Secret (with `.reveal()`) or a plain string.
        timeout_s: deadline of each request.
    """

    def __init__(self, token: SecretLike | str, *, timeout_s: float = 5.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ApplianceClient(timeout_s={self._timeout.total}, token=<hidden>)"

    async def __aenter__(self) -> ApplianceClient:
        if self._session is not None:
            raise RuntimeError("ApplianceClient is already open")
        token = self._token if isinstance(self._token, str) else self._token.reveal()
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"cdnops/{__version__}",
            },
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def start_action(
        self, appliance: Appliance, action: str, body: Mapping[str, object]
    ) -> str:
        """Start an action; returns its action_id. Raises ApplianceError on any failure."""
        url = f"{appliance.url.rstrip('/')}/actions/{quote(action, safe='')}"
        doc = await self._request("POST", appliance, url, action, orjson.dumps(dict(body)))
        action_id = doc.get("action_id")
        if not isinstance(action_id, str) or not action_id:
            raise ActionRequestError(appliance, url, action, 202, "answer has no action_id")
        return action_id

    async def action_status(self, appliance: Appliance, action_id: str) -> ActionStatus:
        """The current status of an action. Raises ApplianceError on any failure."""
        url = f"{appliance.url.rstrip('/')}/actions/{quote(action_id, safe='')}"
        doc = await self._request("GET", appliance, url, f"status of {action_id}", None)
        fields = [doc.get(k) for k in ("action_id", "action", "status", "detail")]
        if not all(isinstance(f, str) for f in fields[:3]):
            raise ActionRequestError(
                appliance, url, f"status of {action_id}", 200, "answer is not an action status"
            )
        detail = fields[3] if isinstance(fields[3], str) else ""
        return ActionStatus(str(fields[0]), str(fields[1]), str(fields[2]), detail)

    async def wait_action(
        self,
        appliance: Appliance,
        action_id: str,
        *,
        timeout_s: float,
        poll_interval_s: float,
    ) -> ActionStatus:
        """Follow an action until it succeeded or failed; ApplianceError past `timeout_s`.

        An appliance that does not answer meanwhile (a reboot makes it unreachable for a
        while) is asked again until the deadline; an error answer ends the wait at once.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                status = await self.action_status(appliance, action_id)
            except ActionRequestError as exc:
                if exc.status is not None or time.monotonic() >= deadline:
                    raise
            else:
                if status.done:
                    return status
                if time.monotonic() >= deadline:
                    url = f"{appliance.url.rstrip('/')}/actions/{action_id}"
                    detail = f"action {action_id} still {status.status} after {timeout_s:g}s"
                    raise ActionRequestError(appliance, url, status.action, None, detail)
            # Actions report no completion event: asking again after a pause is the contract.
            await asyncio.sleep(min(poll_interval_s, max(deadline - time.monotonic(), 0.0)))

    async def _request(
        self, method: str, appliance: Appliance, url: str, action: str, data: bytes | None
    ) -> dict[str, object]:
        if self._session is None:
            raise RuntimeError("ApplianceClient is not open (use `async with`)")
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._session.request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise ActionRequestError(appliance, url, action, None, "timed out") from None
        except aiohttp.ClientError as exc:
            # The aiohttp error may carry request headers (the token): keep only its text.
            raise ActionRequestError(appliance, url, action, None, str(exc) or "failed") from None
        doc = _json_object(raw)
        if status >= 400 or status < 200:
            text = (
                doc.get("error")
                if isinstance(doc.get("error"), str)
                else raw[:300].decode("utf-8", "replace")
            )
            raise ActionRequestError(appliance, url, action, status, str(text)[:_ERROR_TEXT_CHARS])
        if not doc:
            raise ActionRequestError(appliance, url, action, status, "answer is not a JSON object")
        return doc


def _json_object(raw: bytes) -> dict[str, object]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}
