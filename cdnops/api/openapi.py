"""The OpenAPI 3.1 description of /api/v1, built from the route table and the request models."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from cdnops.commands import REQUEST_MODELS

if TYPE_CHECKING:
    from cdnops.api.v1 import Route

_REF = "#/components/schemas/{model}"
_ERROR = {"$ref": "#/components/schemas/Error"}
_PATH_PARAM = re.compile(r"\{(\w+)\}")


def _errors(write: bool) -> dict[str, Any]:
    def err(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": _ERROR}}}

    out = {"400": err("a bad query or body"), "404": err("not found")}
    if write:
        out |= {
            "401": err("no or a wrong bearer token"),
            "403": err("writes are disabled: no api.write_token configured"),
            "409": err("refused in the daemon's current state"),
            "422": err("the body does not validate (see `problems`)"),
            "503": err("the part that would answer is disabled or failing"),
        }
    return out


@cache
def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "what went wrong, for an operator"},
                "problems": {"type": "array", "items": {"type": "string"}},
            },
        }
    }
    for model in REQUEST_MODELS:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "responses": {
            "2XX": {
                "description": "success",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_errors(route.write),
        },
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    params += [
        {"name": p.name, "in": "query", "description": p.description, "schema": p.schema}
        for p in route.query
    ]
    if params:
        op["parameters"] = params
    if route.body is not None:
        ref = {"$ref": _REF.format(model=route.body.__name__)}
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": ref}}}
    elif route.raw_body:
        schema = {"type": "object", "description": route.raw_body}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if route.write:
        op["security"] = [{"bearer": []}]
    return op


def describe(routes: Iterable[Route], *, version: str, prefix: str) -> dict[str, Any]:
    """The whole description; reads are open, writes need the bearer token."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(f"{prefix}{route.path}", {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cdnops API",
            "version": version,
            "description": "Reads are open on the daemon's address; writes need "
            '`Authorization: Bearer <api.write_token>`. Errors are `{"error": message}`.',
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
