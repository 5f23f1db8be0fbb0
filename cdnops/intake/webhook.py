"""Alertmanager's webhook payload (version 4): validation into typed alerts, pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

MAX_ERRORS_SHOWN = 5
# Alertmanager writes this for "not set" (Go's zero time).
_UNSET_BEFORE = datetime(1970, 1, 2).astimezone()

Text = Annotated[str, StringConstraints(max_length=4096)]


class IntakeError(ValueError):
    """A request body that is not an Alertmanager webhook (version 4); the message says why."""


class _Model(BaseModel):
    # Alertmanager adds fields over versions: unknown ones are ignored, known ones checked.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


class _Alert(_Model):
    status: Literal["firing", "resolved"]
    labels: dict[Text, Text]
    annotations: dict[Text, Text] = Field(default_factory=dict)
    startsAt: AwareDatetime | None = None  # the payload spells its keys in camelCase
    endsAt: AwareDatetime | None = None
    generatorURL: Text = ""
    fingerprint: Annotated[str, StringConstraints(max_length=64)] = ""


class _Payload(_Model):
    version: Literal["4"]
    status: Literal["firing", "resolved"] = "firing"
    receiver: Text = ""
    groupKey: Text = ""
    truncatedAlerts: int = Field(default=0, ge=0)
    alerts: list[_Alert]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of a notification; `fingerprint` identifies it across notifications."""

    fingerprint: str
    firing: bool
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_ts: float | None  # None when Alertmanager did not set it
    ends_ts: float | None
    generator_url: str

    def to_json(self) -> dict[str, Any]:
        """What the store keeps of the alert."""
        return {
            "status": "firing" if self.firing else "resolved",
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_ts": self.starts_ts,
            "ends_ts": self.ends_ts,
            "generator_url": self.generator_url,
        }


@dataclass(frozen=True, slots=True)
class Notification:
    """A validated webhook body."""

    receiver: str
    group_key: str
    truncated: int  # alerts Alertmanager left out (the receiver's `max_alerts`)
    alerts: tuple[Alert, ...]


def parse_notification(payload: object, *, max_alerts: int) -> Notification:
    """Validate a decoded JSON body; raises IntakeError naming every problem (up to a few)."""
    if not isinstance(payload, dict):
        raise IntakeError(
            f"expected an Alertmanager webhook (a JSON object), got {type(payload).__name__}"
        )
    if payload.get("version") not in (None, "4"):
        raise IntakeError(
            f"unsupported webhook version {payload.get('version')!r}: this intake reads "
            "version 4 (Alertmanager 0.16 and later)"
        )
    alerts = payload.get("alerts")
    if isinstance(alerts, list) and len(alerts) > max_alerts:
        raise IntakeError(
            f"{len(alerts)} alerts in one request, more than the {max_alerts} accepted "
            "(api.alertmanager.max_alerts); set max_alerts in Alertmanager's webhook_configs"
        )
    try:
        body = _Payload.model_validate(payload)
    except ValidationError as exc:
        raise IntakeError(_describe(exc)) from None
    return Notification(
        receiver=body.receiver,
        group_key=body.groupKey,
        truncated=body.truncatedAlerts,
        alerts=tuple(_alert(a) for a in body.alerts),
    )


def _alert(a: _Alert) -> Alert:
    return Alert(
        fingerprint=a.fingerprint or fingerprint_of(a.labels),
        firing=a.status == "firing",
        labels=dict(a.labels),
        annotations=dict(a.annotations),
        starts_ts=_ts(a.startsAt),
        ends_ts=_ts(a.endsAt),
        generator_url=a.generatorURL,
    )


def fingerprint_of(labels: dict[str, str]) -> str:
    """A stable id for a label set, for senders that leave `fingerprint` out."""
    digest = hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"labels-{digest[:16]}"


def _ts(dt: datetime | None) -> float | None:
    return None if dt is None or dt < _UNSET_BEFORE else dt.timestamp()


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{_where(e['loc'])}: {e['msg']}" for e in errors[:MAX_ERRORS_SHOWN]]
    more = len(errors) - MAX_ERRORS_SHOWN
    if more > 0:
        parts.append(f"and {more} more")
    return "not an Alertmanager webhook (version 4): " + "; ".join(parts)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"
