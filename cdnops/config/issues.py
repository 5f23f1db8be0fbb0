"""Turn pydantic validation errors into operator messages at the YAML line and column."""

from __future__ import annotations

import difflib
import enum
import json
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from cdnops.config.yamlload import Loc, YamlDocument
from cdnops.errors import Issue

# Errors under these top-level keys never echo the input: it may be a secret.
SENSITIVE_KEYS = frozenset({"appliance_token"})

_MAX_SHOWN = 60


class LocatedValueError(ValueError):
    """A validator's error about a part of its value (`at` is appended to the field's loc)."""

    def __init__(self, message: str, at: Loc = ()) -> None:
        super().__init__(message)
        self.at = at


def issues_from_validation(
    exc: ValidationError, doc: YamlDocument, model: type[BaseModel], prefix: Loc = ()
) -> list[Issue]:
    """One Issue per pydantic error, in file order.

    Args:
        exc: the error raised by `model.model_validate(...)`.
        doc: the YAML document the data came from (for the marks).
        model: the model that was validated, to describe what each key expects.
        prefix: where the validated data sits in the document.
    """
    errors = exc.errors(include_url=False)
    # a list whose items failed also reports itself too short (its valid items are counted)
    item_locs = {tuple(e["loc"][:-1]) for e in errors if e["loc"]}
    errors = [e for e in errors if not (e["type"] == "too_short" and e["loc"] in item_locs)]
    issues = [_issue(err, doc, model, prefix) for err in errors]
    return sorted(issues, key=lambda i: (i.line, i.col))


def _issue(err: ErrorDetails, doc: YamlDocument, model: type[BaseModel], prefix: Loc) -> Issue:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    error = ctx.get("error")
    if isinstance(error, LocatedValueError):
        loc = (*loc, *error.at)
    full = (*prefix, *loc)
    if kind == "extra_forbidden":
        return doc.issue(full, _unknown_key_message(model, loc), key=True)
    target = _target(model, loc)
    expected = describe(*target) if target else None
    if kind == "missing":
        return doc.issue(full, f"required key is missing (expected {expected or 'a value'})")
    if kind in ("value_error", "assertion_error") and error is not None:
        return doc.issue(full, str(error))
    shown = not (full and full[0] in SENSITIVE_KEYS)
    if expected is None:
        return doc.issue(full, _fallback(err, shown=shown))
    message = f"must be {expected}"
    if shown:
        message += f", got {render(err['input'])}"
        if kind == "string_type" and isinstance(err["input"], int | float):
            message += " (put it in quotes to keep it as text)"
    return doc.issue(full, message)


def _fallback(err: ErrorDetails, *, shown: bool) -> str:
    """Pydantic's own words, for a type this module does not describe."""
    msg = err["msg"].removeprefix("Input ").removeprefix("Value error, ")
    return f"{msg}, got {render(err['input'])}" if shown else msg


def _unknown_key_message(model: type[BaseModel], loc: Loc) -> str:
    parent = _target(model, loc[:-1])
    valid: list[str] = []
    if parent and _is_model(parent[0]):
        valid = list(parent[0].model_fields)
    if not valid:
        return "unknown key"
    message = f"unknown key (valid keys here: {', '.join(valid)})"
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
    return message + (f'; did you mean "{close[0]}"?' if close else "")


def _is_model(annotation: Any) -> typing.TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _target(model: type[BaseModel], loc: Loc) -> tuple[Any, list[Any]] | None:
    """The annotation and constraints of the value at `loc`, or None when unknown."""
    annotation: Any = model
    metadata: list[Any] = []
    for step in loc:
        annotation = _strip_optional(annotation)
        args = typing.get_args(annotation)
        origin = typing.get_origin(annotation)
        if _is_model(annotation) and isinstance(step, str) and step in annotation.model_fields:
            info = annotation.model_fields[step]
            annotation, metadata = info.annotation, list(info.metadata)
        elif origin in (tuple, list) and isinstance(step, int) and args:
            annotation, metadata = _unwrap(args[0])
        elif origin is dict and isinstance(step, str) and len(args) == 2:
            annotation, metadata = _unwrap(args[1])
        else:
            return None
    return annotation, metadata


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        meta: list[Any] = []
        for item in extra:
            meta.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        return base, meta
    return annotation, []


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return annotation


_PLURALS = {"a string": "strings", "a number": "numbers", "an integer": "integers"}


def describe(annotation: Any, metadata: Iterable[Any] = ()) -> str | None:
    """What an operator must write for a value of this type, e.g. `a number > 0`."""
    base = _describe_type(_strip_optional(annotation))
    if base is None:
        return None
    bounds = _bounds(metadata)
    return f"{base} {bounds}" if bounds else base


def _describe_type(annotation: Any) -> str | None:
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in simple:
        return simple[annotation]
    if annotation is Path:
        return "a path"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in annotation)
    if origin in (tuple, list) and args:
        item = _describe_type(_unwrap(args[0])[0])
        return f"a list of {_PLURALS.get(item or '', 'items')}"
    if origin is dict and len(args) == 2:
        key, value = (_describe_type(_unwrap(a)[0]) for a in args)
        keys, values = _PLURALS.get(key or "", "keys"), _PLURALS.get(value or "", "values")
        return f"a mapping of {keys} to {values}"
    if _is_model(annotation):
        return "a mapping with the keys " + ", ".join(annotation.model_fields)
    return None


def _bounds(metadata: Iterable[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attr, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                parts.append(f"{sign} {_number(value)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length > 0:
            parts.append(f"with at least {item.min_length} item{'s' * (item.min_length > 1)}")
    return " and ".join(parts)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def render(value: Any) -> str:
    """A short, unambiguous rendering of a YAML value for a message."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 3] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    return f"{type(value).__name__} {value}"
