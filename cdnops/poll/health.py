"""Health answers (contract JSON and Prometheus text) to one row of samples: pure parsing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import orjson

from cdnops.model import ApplianceState, ServiceStatus

_NAN = math.nan
_REQUIRED = ("appliance", "site", "ts", "uptime_s", "state", "services", "metrics")
_PROM_PREFIX = "appliance_"

STATES: dict[str, int] = {
    "serving": ApplianceState.SERVING,
    "draining": ApplianceState.DRAINING,
    "drained": ApplianceState.DRAINED,
    "maintenance": ApplianceState.MAINTENANCE,
}

SERVICE_STATUSES: dict[str, int] = {
    "running": ServiceStatus.RUNNING,
    "degraded": ServiceStatus.DEGRADED,
    "failed": ServiceStatus.FAILED,
    "stopped": ServiceStatus.STOPPED,
}

# bgp reports session states; they fold into the common codes.
BGP_STATUSES: dict[str, int] = {
    "established": ServiceStatus.RUNNING,
    "active": ServiceStatus.DEGRADED,
    "connect": ServiceStatus.DEGRADED,
    "idle": ServiceStatus.FAILED,
}


class BadBodyError(ValueError):
    """The body is not the contract's: the message says what is wrong."""


class Sample(NamedTuple):
    """One good poll: metric values in column order (NaN where absent) and the rest."""

    values: list[float]
    ts: float  # the appliance's clock (JSON) or the poll time (text)
    uptime_s: float
    state: int  # ApplianceState
    services: list[tuple[str, int]]  # (name, ServiceStatus)


class HealthParser:
    """Parses answers for a fixed list of tracked metrics (the fleet arrays' columns)."""

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = tuple(metrics)
        self._column = {name: j for j, name in enumerate(self.metrics)}
        self._prom_column = {_PROM_PREFIX + name: j for j, name in enumerate(self.metrics)}
        self._blank = [_NAN] * len(self.metrics)

    def parse_json(self, body: bytes, appliance_id: str) -> Sample:
        """Parse and validate a `/health` body; raises BadBodyError with the reason."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadBodyError(f"invalid JSON: {exc}") from None
        if type(doc) is not dict:
            raise BadBodyError("not a JSON object")
        if len(doc) < len(_REQUIRED) or any(k not in doc for k in _REQUIRED):
            missing = [k for k in _REQUIRED if k not in doc]
            raise BadBodyError(f"missing keys: {', '.join(missing)}")
        if doc["appliance"] != appliance_id:
            raise BadBodyError(f"answer is for appliance {doc['appliance']!r}")
        if type(doc["site"]) is not str:
            raise BadBodyError("site is not a string")
        state = STATES.get(doc["state"]) if type(doc["state"]) is str else None
        if state is None:
            raise BadBodyError(f"unknown state {doc['state']!r}")
        return Sample(
            self._metrics(doc["metrics"]),
            _finite(doc["ts"], "ts"),
            _finite(doc["uptime_s"], "uptime_s"),
            state,
            _services(doc["services"]),
        )

    def _metrics(self, metrics: object) -> list[float]:
        if type(metrics) is not dict:
            raise BadBodyError("metrics is not an object")
        values = self._blank.copy()
        column = self._column
        for name, value in metrics.items():
            kind = type(value)
            # bool is a subclass of int but not a number in the contract; `v - v` is NaN for
            # NaN and infinities, so this rejects every non-finite float without a call.
            if kind is float:
                if value - value != 0.0:
                    raise BadBodyError(f"metric {name} is not finite")
            elif kind is int:
                value = float(value)
            else:
                raise BadBodyError(f"metric {name} is not a number: {value!r:.40}")
            j = column.get(name)
            if j is not None:
                values[j] = value
        return values

    def parse_prometheus(self, body: bytes, poll_ts: float) -> Sample:
        """Parse a `/metrics` body in the Prometheus text format; raises BadBodyError.

        Only `appliance_<metric>` samples of tracked metrics are kept (labels, if any, are
        ignored: the last sample of a name wins); `appliance_uptime_s` gives the uptime.
        A non-finite value leaves the cell empty. The text format has no state or services.
        """
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise BadBodyError(f"not UTF-8: {exc}") from None
        values = self._blank.copy()
        uptime = _NAN
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line[0] == "#":
                continue
            name, value = _prom_sample(line, number)
            if name == "appliance_uptime_s":
                uptime = value
            j = self._prom_column.get(name)
            if j is not None and value - value == 0.0:
                values[j] = value
        return Sample(values, poll_ts, uptime, ApplianceState.UNKNOWN, [])


def _finite(value: object, key: str) -> float:
    if type(value) is float:
        if value - value == 0.0:
            return value
    elif type(value) is int:
        return float(value)
    raise BadBodyError(f"{key} is not a finite number: {value!r:.40}")


def _services(services: object) -> list[tuple[str, int]]:
    if type(services) is not dict:
        raise BadBodyError("services is not an object")
    out = []
    for name, status in services.items():
        table = BGP_STATUSES if name == "bgp" else SERVICE_STATUSES
        code = table.get(status) if type(status) is str else None
        if code is None:
            raise BadBodyError(f"service {name} has unknown status {status!r:.40}")
        out.append((name, code))
    return out


def _prom_sample(line: str, number: int) -> tuple[str, float]:
    brace = line.find("{")
    if brace >= 0:
        close = line.rfind("}")
        if close < brace:
            raise BadBodyError(f"line {number}: unclosed label set")
        name, rest = line[:brace], line[close + 1 :].split()
    else:
        name, *rest = line.split()
    if not rest or len(rest) > 2 or not name:
        raise BadBodyError(f"line {number}: not a sample: {line!r:.60}")
    try:
        return name, float(rest[0])
    except ValueError:
        raise BadBodyError(f"line {number}: bad value {rest[0]!r:.40}") from None
