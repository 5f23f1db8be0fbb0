"""Health JSON and Prometheus text bodies for one appliance, including malformed variants."""

from __future__ import annotations

import orjson

from cdnops.model import CONTRACT_METRICS
from cdnops.sim.fleet import INT_COLUMNS, STATE_NAMES, Fleet

SERVICE_WORDS = ("running", "degraded", "failed", "stopped")
BGP_WORDS = ("established", "active", "idle", "idle")
OVERSIZE_BYTES = 70 * 1024  # over the contract's 64 KiB cap
PROM_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_NAN_MARK = "__nan__"
_INT_COLS = [CONTRACT_METRICS.index(c) for c in INT_COLUMNS]
_REQ_COL = CONTRACT_METRICS.index("requests_total")
_AUX = len(CONTRACT_METRICS)  # first auxiliary column of `Fleet.table`


# Every combination of service codes maps to one shared, read-only services object.
SERVICE_DOCS: tuple[dict[str, str], ...] = tuple(
    {"nginx": SERVICE_WORDS[a], "cache": SERVICE_WORDS[b], "bgp": BGP_WORDS[c]}
    for a in range(4)
    for b in range(4)
    for c in range(4)
)


def health_doc(fleet: Fleet, row: int, sim_now: float) -> dict[str, object]:
    """The contract's health document (the hot path: keep it lean)."""
    values = fleet.table[row].tolist()
    boot_sim, req_rate, state, service_key = values[_AUX:]
    for j in _INT_COLS:
        values[j] = int(values[j])
    # Between model steps the request counter keeps growing at the last step's rate.
    values[_REQ_COL] = int(values[_REQ_COL] + req_rate * max(sim_now - fleet.last_sim, 0.0))
    return {
        "appliance": fleet.row_id[row],
        "site": fleet.row_site[row],
        # Truncation, not round(): a third of the cost, and milliseconds are plenty.
        "ts": int(sim_now * 1000) / 1000,
        "uptime_s": int((sim_now - boot_sim) * 10) / 10,
        "state": STATE_NAMES[int(state)],
        "services": SERVICE_DOCS[int(service_key)],
        # zip stops at the 12 metric names, before the auxiliary columns.
        "metrics": dict(zip(CONTRACT_METRICS, values)),  # noqa: B905
    }


def health_body(doc: dict[str, object], variant: str | None) -> bytes:
    """Serialize, or break the document the way a `malformed` fault says."""
    if variant is None:
        return orjson.dumps(doc)
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    if variant == "invalid_json":
        return orjson.dumps(doc)[:-9] + b",,}"
    if variant == "oversized":
        doc["debug"] = "x" * OVERSIZE_BYTES
        return orjson.dumps(doc)
    doc["services"] = dict(doc["services"])  # type: ignore[call-overload]
    if variant == "wrong_types":
        doc["uptime_s"] = str(doc["uptime_s"])
        doc["metrics"] = {k: str(v) for k, v in metrics.items()}
        return orjson.dumps(doc)
    metrics["cpu_util"] = _NAN_MARK  # nan: orjson refuses NaN, so splice the literal in
    return orjson.dumps(doc).replace(b'"' + _NAN_MARK.encode() + b'"', b"NaN")


def prometheus_body(doc: dict[str, object], variant: str | None) -> bytes:
    """The same metrics in the Prometheus text format, `appliance_<metric>` samples."""
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    lines = []
    for name, value in metrics.items():
        kind = "counter" if name.endswith("_total") else "gauge"
        lines.append(f"# TYPE appliance_{name} {kind}\nappliance_{name} {value}\n")
    if variant == "invalid_json":
        lines.insert(0, "appliance_cpu_util{broken 1\n")
    elif variant == "oversized":
        lines.append("# padding " + "x" * OVERSIZE_BYTES + "\n")
    elif variant == "wrong_types":
        lines[0] = "# TYPE appliance_cpu_util gauge\nappliance_cpu_util high\n"
    elif variant == "nan":
        lines[0] = "# TYPE appliance_cpu_util gauge\nappliance_cpu_util NaN\n"
    return "".join(lines).encode()
