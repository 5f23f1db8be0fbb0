"""Health parsing: the contract's JSON, every kind of bad body, the Prometheus text format."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from poll_servers import health_doc

from cdnops.model import CONTRACT_METRICS, ApplianceState, ServiceStatus
from cdnops.poll.health import BadBodyError, HealthParser


@pytest.fixture
def parser() -> HealthParser:
    return HealthParser(CONTRACT_METRICS)


def body(**changes: object) -> bytes:
    doc = health_doc("a1", site="s1", ts=1_700_000_010.5, requests=12345)
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return orjson.dumps(doc)


def test_json_sample_holds_tracked_metrics_in_column_order(parser: HealthParser) -> None:
    sample = parser.parse_json(body(), "a1")
    col = {m: j for j, m in enumerate(CONTRACT_METRICS)}
    assert sample.values[col["cpu_util"]] == 0.5
    assert sample.values[col["requests_total"]] == 12345.0
    assert sample.values[col["disk_errors_total"]] == 3.0
    assert math.isnan(sample.values[col["egress_gbps"]])  # not reported: invalid, not an error
    assert len(sample.values) == len(CONTRACT_METRICS)  # the untracked metric is ignored
    assert sample.ts == 1_700_000_010.5
    assert sample.uptime_s == 100.0
    assert sample.state == ApplianceState.SERVING
    assert sample.services == [
        ("nginx", ServiceStatus.RUNNING),
        ("cache", ServiceStatus.DEGRADED),
        ("bgp", ServiceStatus.RUNNING),
    ]


@pytest.mark.parametrize(
    ("bgp", "code"),
    [
        ("established", ServiceStatus.RUNNING),
        ("active", ServiceStatus.DEGRADED),
        ("connect", ServiceStatus.DEGRADED),
        ("idle", ServiceStatus.FAILED),
    ],
)
def test_bgp_states_fold_into_service_codes(
    parser: HealthParser, bgp: str, code: ServiceStatus
) -> None:
    sample = parser.parse_json(body(services={"bgp": bgp, "nginx": "stopped"}), "a1")
    assert sample.services == [("bgp", code), ("nginx", ServiceStatus.STOPPED)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"appliance": ', "invalid JSON"),
        (body().replace(b'"cpu_util":0.5', b'"cpu_util":NaN'), "invalid JSON"),
        (body().replace(b'"cpu_util":0.5', b'"cpu_util":Infinity'), "invalid JSON"),
        (body().replace(b'"cpu_util":0.5', b'"cpu_util":1e999'), "invalid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (body(state=None), "missing keys: state"),
        (body(metrics=None, ts=None), "missing keys: ts, metrics"),
        (body(appliance="b2"), "answer is for appliance 'b2'"),
        (body(site=7), "site is not a string"),
        (body(state="on-fire"), "unknown state 'on-fire'"),
        (body(state=1), "unknown state 1"),
        (body(metrics=[1]), "metrics is not an object"),
        (body(metrics={"cpu_util": "high"}), "metric cpu_util is not a number: 'high'"),
        (body(metrics={"cpu_util": True}), "metric cpu_util is not a number: True"),
        (body(metrics={"cpu_util": None}), "metric cpu_util is not a number: None"),
        (body(metrics={"other": "x"}), "metric other is not a number: 'x'"),
        (body(ts="now"), "ts is not a finite number: 'now'"),
        (body(uptime_s=False), "uptime_s is not a finite number: False"),
        (body(services=["nginx"]), "services is not an object"),
        (body(services={"nginx": "sleepy"}), "service nginx has unknown status 'sleepy'"),
        (body(services={"bgp": "running"}), "service bgp has unknown status 'running'"),
        (body(services={"nginx": 1}), "service nginx has unknown status 1"),
    ],
)
def test_bad_bodies_raise_with_the_reason(parser: HealthParser, raw: bytes, message: str) -> None:
    with pytest.raises(BadBodyError) as info:
        parser.parse_json(raw, "a1")
    assert str(info.value).startswith(message)


def test_integer_metrics_and_big_counters_store_as_floats(parser: HealthParser) -> None:
    sample = parser.parse_json(body(metrics={"requests_total": 2**64 - 1, "cpu_util": 1}), "a1")
    row = np.array(sample.values, dtype=np.float64)
    assert row[CONTRACT_METRICS.index("requests_total")] == float(2**64 - 1)
    assert row[CONTRACT_METRICS.index("cpu_util")] == 1.0


def test_prometheus_text_tracked_samples_and_uptime(parser: HealthParser) -> None:
    text = b"""# HELP appliance_cpu_util CPU
# TYPE appliance_cpu_util gauge
appliance_cpu_util 0.42
appliance_requests_total{node="x"} 918273645 1700000000000
appliance_temperature_c NaN
appliance_unknown_metric 5
other_family 1

appliance_uptime_s 3600
"""
    sample = parser.parse_prometheus(text, poll_ts=1_700_000_123.0)
    col = {m: j for j, m in enumerate(CONTRACT_METRICS)}
    assert sample.values[col["cpu_util"]] == 0.42
    assert sample.values[col["requests_total"]] == 918273645.0
    assert math.isnan(sample.values[col["temperature_c"]])
    assert sample.ts == 1_700_000_123.0  # the poll time: the text format has no clock
    assert sample.uptime_s == 3600.0
    assert sample.state == ApplianceState.UNKNOWN
    assert sample.services == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"appliance_cpu_util\n", "line 1: not a sample: 'appliance_cpu_util'"),
        (b"# ok\nappliance_cpu_util high\n", "line 2: bad value 'high'"),
        (b'appliance_cpu_util{a="b" 1\n', "line 1: unclosed label set"),
        (b"appliance_cpu_util 1 2 3\n", "line 1: not a sample"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_prometheus_text_errors(parser: HealthParser, text: bytes, message: str) -> None:
    with pytest.raises(BadBodyError) as info:
        parser.parse_prometheus(text, poll_ts=0.0)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("tracked", "expected"),
    [((), []), (("cpu_util",), [0.5]), (("cpu_util", "nope"), [0.5, None])],
)
def test_any_number_of_tracked_metrics(tracked: tuple[str, ...], expected: list[float]) -> None:
    values = list(HealthParser(tracked).parse_json(body(), "a1").values)
    assert [None if isinstance(v, float) and math.isnan(v) else v for v in values] == expected
