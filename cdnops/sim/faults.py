"""Fault kinds, their parameters, and validation of a fault description (scenario or API)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cdnops.model import CONTRACT_METRICS, is_counter

SERVICES: tuple[str, ...] = ("nginx", "cache", "bgp")
# the contract's gauges: what faults may bend (counters follow from rates)
GAUGES: tuple[str, ...] = tuple(m for m in CONTRACT_METRICS if not is_counter(m))
MALFORMED_VARIANTS: tuple[str, ...] = ("invalid_json", "oversized", "wrong_types", "nan")

# Faults that hit a whole point of presence: their target must be a site.
SITE_ONLY_KINDS = frozenset({"site_upstream_outage", "traffic_surge"})

Check = Callable[[object], str | None]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive(value: object) -> str | None:
    """None if `value` is a finite number > 0, else the message."""
    return None if _is_number(value) and value > 0 else f"must be a number > 0, got {value!r}"  # type: ignore[operator]


def ratio(value: object) -> str | None:
    """None if `value` is a number in [0, 1], else the message."""
    ok = _is_number(value) and 0 <= value <= 1  # type: ignore[operator]
    return None if ok else f"must be a number in [0, 1], got {value!r}"


def number(value: object) -> str | None:
    """None if `value` is a finite number, else the message."""
    return None if _is_number(value) else f"must be a number, got {value!r}"


def boolean(value: object) -> str | None:
    """None if `value` is a bool, else the message."""
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def choice(*options: str) -> Check:
    """A check that accepts one of `options`."""

    def check(value: object) -> str | None:
        if value in options:
            return None
        return f"must be one of {', '.join(options)}, got {value!r}"

    return check


@dataclass(frozen=True)
class Param:
    """One fault parameter: its default (None = required) and its check."""

    default: object
    check: Check


PARAMS: dict[str, dict[str, Param]] = {
    "service_crash": {
        "service": Param("nginx", choice(*SERVICES)),
        "recur": Param(False, boolean),
        "recur_after_s": Param(30.0, positive),
        "restart_fails": Param(False, boolean),
    },
    "memory_leak": {"tau_s": Param(1800.0, positive)},
    "cache_corruption": {"hit_ratio": Param(0.3, ratio)},
    "disk_failure": {"errors_per_s": Param(0.5, positive)},
    "nic_degradation": {
        "retransmit_ratio": Param(0.06, ratio),
        "egress_factor": Param(0.6, ratio),
        "errors_per_s": Param(20.0, positive),
    },
    "thermal": {"rise_c": Param(48.0, positive)},
    "hung": {},
    "site_upstream_outage": {
        "latency_ms": Param(2500.0, positive),
        "http_5xx_ratio": Param(0.2, ratio),
    },
    "traffic_surge": {"factor": Param(1.8, positive)},
    "flapping": {
        "metric": Param(None, choice(*GAUGES)),
        "period_s": Param(30.0, positive),
        "value": Param(math.nan, number),
    },
    "slow_health": {"delay_s": Param(2.0, positive)},
    "malformed": {"variant": Param(None, choice(*MALFORMED_VARIANTS))},
}
KINDS: tuple[str, ...] = tuple(PARAMS)
FIELDS: tuple[str, ...] = ("kind", "target", "at_s", "duration_s", "params")


@dataclass(frozen=True)
class FaultSpec:
    """What to inject: `at_s` is sim seconds after the start (scenario) or after the request."""

    kind: str
    target: str
    at_s: float = 0.0
    duration_s: float | None = None
    params: Mapping[str, object] = field(default_factory=dict)

    def param(self, name: str) -> object:
        """The parameter's value, or its default."""
        return self.params.get(name, PARAMS[self.kind][name].default)

    def num(self, name: str) -> float:
        """A numeric parameter as a float."""
        value = self.param(name)
        assert isinstance(value, int | float)  # guaranteed by check_fault
        return float(value)

    def as_dict(self) -> dict[str, object]:
        """The JSON form, parameters with their defaults filled in."""
        params = {k: self.param(k) for k in PARAMS[self.kind]}
        params = {k: v for k, v in params.items() if not (isinstance(v, float) and math.isnan(v))}
        return {
            "kind": self.kind,
            "target": self.target,
            "at_s": self.at_s,
            "duration_s": self.duration_s,
            "params": params,
        }


Problems = list[tuple[str, str]]  # (dotted path, message)


def _check_params(kind: str, raw: object, problems: Problems) -> dict[str, object]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(("params", f"must be a mapping, got {raw!r}"))
        return {}
    schema = PARAMS[kind]
    out: dict[str, object] = {}
    for name, value in raw.items():
        if name not in schema:
            known = ", ".join(schema) or "none"
            problems.append((f"params.{name}", f"unknown parameter for {kind} (known: {known})"))
            continue
        message = schema[name].check(value)
        if message:
            problems.append((f"params.{name}", message))
        else:
            out[str(name)] = value
    for name, param in schema.items():
        if param.default is None and name not in raw:
            problems.append((f"params.{name}", f"required for {kind}"))
    return out


def _check_times(raw: Mapping[str, object], problems: Problems) -> tuple[float, float | None]:
    at_s, duration_s = raw.get("at_s", 0.0), raw.get("duration_s")
    if not _is_number(at_s) or at_s < 0:  # type: ignore[operator]
        problems.append(("at_s", f"must be a number >= 0, got {at_s!r}"))
        at_s = 0.0
    if duration_s is not None and (message := positive(duration_s)):
        problems.append(("duration_s", message + " (or absent: until fixed or cleared)"))
        duration_s = None
    return float(at_s), None if duration_s is None else float(duration_s)  # type: ignore[arg-type]


def check_fault(raw: object) -> tuple[FaultSpec | None, Problems]:
    """Validate one fault description; returns the spec, or None and every problem found."""
    if not isinstance(raw, Mapping):
        return None, [("", f"a fault must be a mapping, got {raw!r}")]
    problems: Problems = [
        (str(k), f"unknown field (known: {', '.join(FIELDS)})") for k in raw if k not in FIELDS
    ]
    kind, target = raw.get("kind"), raw.get("target")
    if kind not in PARAMS:
        problems.append(("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}"))
    if not isinstance(target, str) or not target:
        problems.append(("target", f"must be an appliance id or a site, got {target!r}"))
    at_s, duration_s = _check_times(raw, problems)
    params = _check_params(kind, raw.get("params"), problems) if kind in PARAMS else {}
    if problems:
        return None, problems
    assert isinstance(kind, str)
    assert isinstance(target, str)
    return FaultSpec(kind, target, at_s, duration_s, params), []
