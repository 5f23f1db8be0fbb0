"""/api/v1: the daemon's JSON API over `Control`, mounted by `HttpServer`.

`ROUTES` is the one list of routes: the router is built from it and so is the OpenAPI
description, so neither can miss one. Reads are open; writes pass `WriteAuth`. Every
error is `{"error": message}` (plus `problems` when there are several), never a trace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiohttp import hdrs, web
from pydantic import BaseModel

from cdnops import __version__
from cdnops.api import views
from cdnops.api.auth import WriteAuth
from cdnops.api.server import API_PREFIX
from cdnops.commands import (
    AckRequest,
    BreakerResetRequest,
    CommandError,
    RunPlaybookRequest,
    SilenceRequest,
    parse,
)
from cdnops.control import (
    ConflictError,
    Control,
    ControlError,
    InvalidError,
    NotFoundError,
    UnavailableError,
)
from cdnops.errors import StoreError

log = logging.getLogger("cdnops.api")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
_JSON = "application/json"
_READ_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})
_STATUS = {NotFoundError: 404, ConflictError: 409, InvalidError: 422, UnavailableError: 503}
_HTTP_MESSAGES = {
    404: "no such route; GET /api/v1/openapi.json lists them all",
    405: "this route does not take that method; GET /api/v1/openapi.json lists them",
    413: "the request body is too large",
}

Handler = Callable[["Api", web.Request], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter, for the router's checks and the OpenAPI description."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Route:
    """One route: method, path under /api/v1, handler, and what OpenAPI says of it."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    query: tuple[Param, ...] = ()
    raw_body: str = ""  # a body that is not one of our models (the Alertmanager payload)

    @property
    def write(self) -> bool:
        return self.method not in _READ_METHODS


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        content_type=_JSON,
    )


def error(status: int, message: str, problems: list[str] | None = None) -> web.Response:
    """The one error shape: `{"error": message}` (+ `problems`)."""
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = problems
    return _json(body, status)


def _bad_query(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message)


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_query(f"?{name} must be a whole number, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise _bad_query(f"?{name} must be between {low} and {high}, got {value}")
    return value


def _time(request: web.Request, name: str) -> float | None:
    """A point in time: Unix seconds, or ISO 8601 with a timezone."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise _bad_query(
            f"?{name} must be Unix seconds or ISO 8601 with a timezone "
            f"(2026-12-01T08:00:00Z), got {raw[:40]!r}"
        )
    return when.timestamp()


def _choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is not None and raw not in choices:
        raise _bad_query(f"?{name} must be one of {', '.join(choices)}, got {raw[:40]!r}")
    return raw


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"the body is not valid JSON: {exc}") from None


class Api:
    """Handlers over one Control (see `ROUTES`)."""

    def __init__(self, control: Control) -> None:
        self.control = control

    # -- appliances -----------------------------------------------------------------
    async def appliances(self, request: web.Request) -> web.Response:
        limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _int(request, "offset", 0, 0, MAX_OFFSET)
        state = _choice(request, "state", views.STATES)
        only = _choice(request, "anomalous", ("true", "false")) == "true"
        frame, result = self.control.latest()
        if frame is None:
            return _json({"tick": None, "total": 0, "items": []})
        by_app = views.anomalies_by_appliance(result)
        rows = views.select_rows(
            frame, by_app, site=request.query.get("site"), state=state, only_anomalous=only
        )
        page = rows[offset : offset + limit]
        # a full page takes tens of ms: render it in a worker thread (the frame is immutable)
        # so the poller's timers keep firing
        items = await asyncio.to_thread(views.appliances, frame, page, by_app, result)
        body = {"tick": views.tick(frame), "total": len(rows), "offset": offset, "items": items}
        return _json(body)

    async def appliance(self, request: web.Request) -> web.Response:
        appliance_id = request.match_info["id"]
        frame, result = self.control.latest()
        row = None if frame is None else views.row_index(frame.inventory).get(appliance_id)
        if frame is None or row is None:
            return error(404, f"no appliance {appliance_id} in the latest tick")
        [item] = views.appliances(frame, [row], views.anomalies_by_appliance(result), result)
        return _json({"tick": views.tick(frame), **item})

    # -- incidents ------------------------------------------------------------------
    async def incidents(self, request: web.Request) -> web.Response:
        status = _choice(request, "status", ("open", "resolved"))
        limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _int(request, "offset", 0, 0, MAX_OFFSET)
        since = _time(request, "since")
        found = self.control.incidents(
            status=status, site=request.query.get("site"), resolved_since=since
        )
        page = [views.incident(i) for i in found[offset : offset + limit]]
        return _json({"total": len(found), "offset": offset, "items": page})

    async def incident(self, request: web.Request) -> web.Response:
        incident_id = request.match_info["id"]
        inc = self.control.incident(incident_id)
        timeline = self.control.timeline(incident_id)
        return _json(views.incident(inc, timeline=timeline, full=True))

    async def acknowledge(self, request: web.Request) -> web.Response:
        req = parse(AckRequest, await _body(request))
        incident_id = request.match_info["id"]
        inc = self.control.acknowledge(incident_id, req.by, req.comment)
        timeline = self.control.timeline(incident_id)
        return _json(views.incident(inc, timeline=timeline, full=True))

    # -- executions -----------------------------------------------------------------
    async def executions(self, request: web.Request) -> web.Response:
        status = _choice(request, "status", ("running", "succeeded", "failed", "interrupted"))
        limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _int(request, "offset", 0, 0, MAX_OFFSET)
        rows = self.control.executions(status=status, limit=limit, offset=offset)
        return _json({"offset": offset, "items": [views.execution(r) for r in rows]})

    async def execution(self, request: web.Request) -> web.Response:
        row, audit = self.control.execution(request.match_info["id"])
        return _json(views.execution(row, audit))

    # -- silences -------------------------------------------------------------------
    async def silences(self, request: web.Request) -> web.Response:
        config = self.control.config_silence_ids()
        items = [
            views.silence(s, source="config" if s.id in config else "runtime")
            for s in self.control.silences()
        ]
        return _json({"items": items})

    async def create_silence(self, request: web.Request) -> web.Response:
        req = parse(SilenceRequest, await _body(request))
        s = self.control.create_silence(req, source="api")
        return _json(views.silence(s, source="runtime"), 201)

    async def expire_silence(self, request: web.Request) -> web.Response:
        silence_id = request.match_info["id"]
        if not self.control.expire_silence(silence_id):
            return error(404, f"no run-time silence {silence_id}")
        return _json({"id": silence_id, "expired": True})

    # -- playbooks ------------------------------------------------------------------
    async def playbooks(self, request: web.Request) -> web.Response:
        pbs = self.control.playbooks().playbooks.values()
        items = [views.playbook(pb, self.control.breaker_state(pb.name)) for pb in pbs]
        return _json({"items": items})

    async def reload_playbooks(self, request: web.Request) -> web.Response:
        result = await self.control.reload_playbooks()
        return _json({"playbooks": result.playbooks, "files": list(result.files)})

    async def run_playbook(self, request: web.Request) -> web.Response:
        req = parse(RunPlaybookRequest, await _body(request))
        name = request.match_info["name"]
        execution_id = self.control.run_playbook(name, req.subject, req.by, req.reason)
        return _json({"playbook": name, "subject": req.subject, "execution_id": execution_id}, 202)

    async def reset_breaker(self, request: web.Request) -> web.Response:
        req = parse(BreakerResetRequest, await _body(request))
        name = request.match_info["name"]
        was_open = self.control.reset_breaker(name, req.by)
        state = self.control.breaker_state(name)
        return _json({"playbook": name, "reset": was_open, "breaker": state})

    # -- Alertmanager ---------------------------------------------------------------
    async def alertmanager(self, request: web.Request) -> web.Response:
        payload = await _body(request)
        if payload is None:
            return error(400, "the body must be an Alertmanager webhook payload (JSON)")
        return _json(self.control.ingest_alertmanager(payload))

    async def openapi(self, request: web.Request) -> web.Response:
        from cdnops.api.openapi import describe

        return _json(describe(ROUTES, version=__version__, prefix=API_PREFIX))


_LIMIT = Param("limit", f"at most this many items (1-{MAX_LIMIT})", {"type": "integer"})
_OFFSET = Param("offset", "skip this many", {"type": "integer"})
_SITE = Param("site", "only this site", {"type": "string"})


def _status(*values: str) -> Param:
    return Param("status", "only this status", {"type": "string", "enum": list(values)})


ROUTES: tuple[Route, ...] = (
    Route("GET", "/appliances", Api.appliances,
          "Appliances as the latest tick saw them, with their active anomalies",
          query=(_SITE, Param("state", "only this state", {"enum": list(views.STATES)}),
                 Param("anomalous", "only those with an active anomaly", {"type": "boolean"}),
                 _LIMIT, _OFFSET)),
    Route("GET", "/appliances/{id}", Api.appliance, "One appliance"),
    Route("GET", "/incidents", Api.incidents,
          "Open incidents, then resolved ones (of the last day unless ?since), newest first",
          query=(_status("open", "resolved"), _SITE,
                 Param("since", "resolved ones resolved at or after this time (Unix seconds "
                       "or ISO 8601 with a timezone; default: a day ago)", {"type": "string"}),
                 _LIMIT, _OFFSET)),
    Route("GET", "/incidents/{id}", Api.incident, "One incident with its timeline and triage"),
    Route("POST", "/incidents/{id}/ack", Api.acknowledge, "Acknowledge an incident",
          body=AckRequest),
    Route("GET", "/executions", Api.executions, "Playbook executions, newest first",
          query=(_status("running", "succeeded", "failed", "interrupted"), _LIMIT, _OFFSET)),
    Route("GET", "/executions/{id}", Api.execution, "One execution with its audit"),
    Route("GET", "/silences", Api.silences, "Silences in effect or to come"),
    Route("POST", "/silences", Api.create_silence, "Create a silence", body=SilenceRequest),
    Route("DELETE", "/silences/{id}", Api.expire_silence, "Expire a run-time silence now"),
    Route("GET", "/playbooks", Api.playbooks, "Loaded playbooks with their breaker state"),
    Route("POST", "/playbooks/reload", Api.reload_playbooks,
          "Re-read the playbooks folder (a bad set is rejected, the running one kept)"),
    Route("POST", "/playbooks/{name}/run", Api.run_playbook, "Run a playbook now on a subject",
          body=RunPlaybookRequest),
    Route("POST", "/playbooks/{name}/breaker/reset", Api.reset_breaker,
          "Close a playbook's circuit breaker", body=BreakerResetRequest),
    Route("POST", "/alerts/alertmanager", Api.alertmanager,
          "Take in an Alertmanager webhook payload",
          raw_body="an Alertmanager webhook payload (version 4)"),
    Route("GET", "/openapi.json", Api.openapi, "This description (OpenAPI 3.1)"),
)  # fmt: skip


def build_api(control: Control, auth: WriteAuth) -> web.Application:
    """The /api/v1 sub-application (`HttpServer(api=...)` mounts it at `API_PREFIX`)."""
    app = web.Application(middlewares=[_errors, _writes_need(auth)])
    api = Api(control)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _bind(api, route.handler))
    return app


def _bind(api: Api, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return await handler(api, request)

    return handle


def _writes_need(auth: WriteAuth) -> Any:
    @web.middleware
    async def writes_need_token(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method not in _READ_METHODS:
            refusal = auth.check(request.headers.get(hdrs.AUTHORIZATION))
            if refusal is not None:
                resp = error(refusal.status, refusal.message)
                if refusal.challenge:
                    resp.headers[hdrs.WWW_AUTHENTICATE] = refusal.challenge
                return resp
        response: web.StreamResponse = await handler(request)
        return response

    return writes_need_token


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure as a JSON error; a bug is logged with its trace and answered 500."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_MESSAGES.get(exc.status) or exc.text or exc.reason
        return error(exc.status, message)
    except CommandError as exc:
        return error(422, "the request is not valid", exc.problems)
    except ControlError as exc:
        problems = exc.problems if isinstance(exc, InvalidError) else None
        return error(_STATUS.get(type(exc), 400), str(exc), problems)
    except StoreError as exc:
        log.error("api: store error on %s %s: %s", request.method, request.path, exc)
        return error(503, f"the store cannot answer now: {exc}")
    except Exception:
        log.exception("api: %s %s failed", request.method, request.path)
        return error(500, "internal error; the daemon's log has the details")
