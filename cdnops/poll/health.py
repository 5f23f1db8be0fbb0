"""Health answers (contract JSON and Prometheus text) to one row of samples: pure parsing."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import NamedTuple

import orjson

from cdnops.model import ApplianceState, ServiceStatus

_NAN = math.nan
_REQUIRED = ("appliance", "site", "ts", "uptime_s", "state", "services", "metrics")
_get_required = operator.itemgetter(*_REQUIRED)
_NUMBER = frozenset({float, int})
_SERVICE_CACHE_SIZE = 4096
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

    values: Sequence[float]  # ints stay ints: numpy converts the row when it is stored
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
        self._get_tracked = _tuple_getter(self.metrics)
        self._service_cache: dict[tuple[tuple[str, object], ...], list[tuple[str, int]]] = {}

    def parse_json(self, body: bytes | memoryview, appliance_id: str) -> Sample:
        """Parse and validate a `/health` body; raises BadBodyError with the reason.

        orjson rejects NaN, Infinity and numbers that overflow a double, so every number it
        returns is finite; what is left to check is types. This runs once per poll, so the
        good path uses C-level lookups and set operations; errors are worded on a slow path.
        """
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadBodyError(f"invalid JSON: {exc}") from None
        try:
            appliance, site, ts, uptime, state, services, metrics = _get_required(doc)
        except (KeyError, TypeError, IndexError):
            raise _shape_error(doc) from None
        if appliance != appliance_id:
            raise BadBodyError(f"answer is for appliance {appliance!r:.80}")
        if type(site) is not str:
            raise BadBodyError("site is not a string")
        code = STATES.get(state) if type(state) is str else None
        if code is None:
            raise BadBodyError(f"unknown state {state!r:.40}")
        if type(ts) not in _NUMBER or type(uptime) not in _NUMBER:
            bad = ("ts", ts) if type(ts) not in _NUMBER else ("uptime_s", uptime)
            raise BadBodyError(f"{bad[0]} is not a finite number: {bad[1]!r:.40}")
        if type(metrics) is not dict:
            raise BadBodyError("metrics is not an object")
        if not _NUMBER.issuperset(map(type, metrics.values())):
            raise _metric_error(metrics)
        try:
            values = self._get_tracked(metrics)  # one C call when every metric is there
        except KeyError:
            values = list(map(metrics.get, self.metrics, self._blank))
        return Sample(values, ts, uptime, code, self._services(services))

    def _services(self, services: object) -> list[tuple[str, int]]:
        if type(services) is not dict:
            raise BadBodyError("services is not an object")
        # Appliances report the same few combinations poll after poll: validate each once.
        key = tuple(services.items())
        try:
            known = self._service_cache.get(key)
        except TypeError:  # an unhashable status (a list, an object): not the contract's
            known = None
        if known is None:
            known = _services(services)
            if len(self._service_cache) >= _SERVICE_CACHE_SIZE:
                self._service_cache.clear()
            self._service_cache[key] = known
        return known

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


def _tuple_getter(keys: Sequence[str]) -> Callable[[dict[str, object]], Sequence[float]]:
    if not keys:
        return lambda d: ()
    getter = operator.itemgetter(*keys)
    if len(keys) == 1:  # itemgetter of one key returns the value, not a 1-tuple
        return lambda d: (getter(d),)
    return getter


def _shape_error(doc: object) -> BadBodyError:
    if type(doc) is not dict:
        return BadBodyError("not a JSON object")
    missing = [k for k in _REQUIRED if k not in doc]
    return BadBodyError(f"missing keys: {', '.join(missing)}")


def _metric_error(metrics: dict[str, object]) -> BadBodyError:
    for name, value in metrics.items():
        if type(value) not in _NUMBER:  # bool is an int subclass, not a number here
            return BadBodyError(f"metric {name} is not a number: {value!r:.40}")
    return BadBodyError("metrics hold a value that is not a number")


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
