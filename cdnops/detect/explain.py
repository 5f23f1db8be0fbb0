"""One-line explanations of anomalies, in the operator's units."""

from __future__ import annotations

import math


def fmt(v: float) -> str:
    """Three significant digits; whole numbers from 1000 to a million, exponents beyond."""
    if math.isfinite(v) and 1000 <= abs(v) < 1e6:
        return f"{v:.0f}"
    return f"{v:.3g}"


def duration(seconds: float) -> str:
    """A span like `45 s`, `10 min`, `1 h`, `2.5 d`, for describing a baseline window."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.2g} {unit}"
    return f"{seconds:.2g} s"


def _site(site_median: float | None) -> str:
    if site_median is None or math.isnan(site_median):
        return ""
    return f"; site median {fmt(site_median)}"


def temporal(
    metric: str,
    value: float,
    z: float,
    window: str,
    mean: float,
    sd: float,
    site_median: float | None,
) -> str:
    """`origin_latency_p99_ms 412 is 9.3 sigma above its 1 h baseline 84 +/- 35; site median 86`."""
    side = "above" if z >= 0 else "below"
    return (
        f"{metric} {fmt(value)} is {abs(z):.1f} sigma {side} its {window} baseline "
        f"{fmt(mean)} +/- {fmt(sd)}{_site(site_median)}"
    )


def peers(metric: str, value: float, z: float, site: str, median: float, count: int) -> str:
    """`cache_hit_ratio 0.61 is 7.2 sigma below the median 0.97 of the 12 serving appliances
    at site sea01` (one line)."""
    side = "above" if z >= 0 else "below"
    return (
        f"{metric} {fmt(value)} is {abs(z):.1f} sigma {side} the median {fmt(median)} "
        f"of the {count} serving appliances at site {site}"
    )


def bounds(metric: str, value: float, above: float | None, below: float | None) -> str:
    """`temperature_c 91.2 is above its limit 85`."""
    if above is not None and value > above:
        return f"{metric} {fmt(value)} is above its limit {fmt(above)}"
    return f"{metric} {fmt(value)} is below its limit {fmt(below if below is not None else 0.0)}"


def counter(metric: str, rate: float, limit: float) -> str:
    """`disk_errors_total is rising at 0.25/s (limit 0/s)`."""
    return f"{metric} is rising at {fmt(rate)}/s (limit {fmt(limit)}/s)"


def counter_held(metric: str, rate: float, limit: float, ticks_ago: int) -> str:
    """`disk_errors_total rose at 0.1/s 3 ticks ago (limit 0/s)`: between a slow counter's steps."""
    return (
        f"{metric} rose at {fmt(rate)}/s {ticks_ago} tick{'s' if ticks_ago != 1 else ''} ago"
        f" (limit {fmt(limit)}/s)"
    )


def trend(metric: str, value: float, slope_per_h: float, ceiling: float, eta_s: float) -> str:
    """`mem_util 0.84 is rising 0.09/h and will reach 0.97 in 1.4 h`."""
    return (
        f"{metric} {fmt(value)} is rising {fmt(slope_per_h)}/h and will reach "
        f"{fmt(ceiling)} in {duration(eta_s)}"
    )


def reachability(failures: int, reason: str) -> str:
    """`3 consecutive failed polls (last: timeout)`."""
    return f"{failures} consecutive failed polls (last: {reason})"


def service(name: str, ticks: int) -> str:
    """`service nginx is failed (1 tick)`."""
    return f"service {name} is failed ({ticks} tick{'s' if ticks != 1 else ''})"
