"""Per-appliance series for `/metrics/appliances`, rendered from one immutable FleetFrame snapshot.

The output is plain Prometheus text (format 0.0.4). With 20,000 appliances x 12 metrics it is
tens of megabytes, which is why it has its own opt-in route and is rendered off the event loop
(`HttpServer` calls `render_appliances` through `asyncio.to_thread`). The rendering is a pure
function of its inputs: nothing here touches the loop or shared mutable state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from cdnops.model import BoolArray, DetectionResult, FleetFrame, FloatArray, PollFailure

IntArray64 = npt.NDArray[np.intp]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Scores live in [0, 1]; four decimals are plenty, and with them every score's text comes
# from a table of 10,001 strings instead of a float formatting per cell.
SCORE_DECIMALS = 4
_SCORE_STEPS = 10**SCORE_DECIMALS

_UP = (
    "cdnops_appliance_up",
    "1 if the appliance's last poll succeeded, else 0.",
)
_METRIC = (
    "cdnops_appliance_metric",
    "Last polled value per appliance and metric, valid values only; "
    "counters (metric names ending in _total) are given as a rate per second.",
)
_SCORE = (
    "cdnops_appliance_anomaly_score",
    "Anomaly score in [0, 1] per appliance and metric from the last detection pass "
    f"(clipped to [0, 1], rounded to {SCORE_DECIMALS} decimals).",
)


def escape_label_value(value: str) -> str:
    """Escape a label value for the text format: backslash, double quote and line feed."""
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _header(name: str, help_text: str) -> str:
    help_escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_escaped}\n# TYPE {name} gauge\n"


def _format_values(values: FloatArray) -> list[str]:
    """Shortest round-trip repr of finite values (callers mask out NaN and infinities)."""
    return list(map(repr, values.tolist()))


@functools.cache
def _score_texts() -> tuple[str, ...]:
    return tuple(repr(k / _SCORE_STEPS) for k in range(_SCORE_STEPS + 1))


def _format_scores(scores: FloatArray) -> list[str]:
    table = _score_texts()
    steps = np.rint(np.clip(scores, 0.0, 1.0) * _SCORE_STEPS).astype(np.int64)
    return [table[k] for k in steps.tolist()]


def _cell_lines(
    name: str,
    appliance_labels: list[str],
    metrics: tuple[str, ...],
    mask: BoolArray,
    texts_of: Callable[[tuple[IntArray64, IntArray64]], list[str]],
) -> str:
    """One sample per masked (appliance, metric) cell, appliance-major."""
    heads = [f"{name}{{{labels},metric=" for labels in appliance_labels]
    tails = [f'"{escape_label_value(m)}"}} ' for m in metrics]
    rows, cols = np.nonzero(mask)
    texts = texts_of((rows, cols))
    return "".join(
        [
            heads[i] + tails[j] + text + "\n"
            for i, j, text in zip(rows.tolist(), cols.tolist(), texts, strict=True)
        ]
    )


def _check_shapes(frame: FleetFrame) -> None:
    n, m = frame.n, len(frame.metrics)
    for what, shape, expected in (
        ("values", frame.values.shape, (n, m)),
        ("valid", frame.valid.shape, (n, m)),
        ("failure", frame.failure.shape, (n,)),
    ):
        if shape != expected:
            raise ValueError(
                f"FleetFrame seq={frame.seq}: {what} has shape {shape}, expected {expected} "
                f"for {n} appliances x {m} metrics"
            )


def render_appliances(frame: FleetFrame | None, result: DetectionResult | None) -> bytes:
    """Render the per-appliance exposition for a frame and, if it matches, a detection result.

    Args:
        frame: the latest fleet snapshot; None before the first tick (headers only).
        result: the latest detection result; its scores are used only when their shape
            matches the frame's (same appliances and metrics), since a result computed
            before an inventory reload would otherwise be attributed to the wrong rows.

    Raises:
        ValueError: the frame's arrays do not match its inventory and metrics.
    """
    if frame is None:
        return "".join([_header(*_UP), _header(*_METRIC), _header(*_SCORE)]).encode()
    _check_shapes(frame)
    labels = [
        f'appliance="{escape_label_value(a.id)}",site="{escape_label_value(a.site)}"'
        for a in frame.inventory.appliances
    ]
    up = (frame.failure == PollFailure.OK).tolist()
    values = frame.values
    parts = [
        _header(*_UP),
        "".join([f"{_UP[0]}{{{lab}}} {int(ok)}\n" for lab, ok in zip(labels, up, strict=True)]),
        _header(*_METRIC),
        _cell_lines(
            _METRIC[0],
            labels,
            frame.metrics,
            frame.valid & np.isfinite(values),
            lambda cells: _format_values(values[cells]),
        ),
        _header(*_SCORE),
    ]
    if result is not None and result.scores.shape == values.shape:
        scores = result.scores
        parts.append(
            _cell_lines(
                _SCORE[0],
                labels,
                frame.metrics,
                ~np.isnan(scores),
                lambda cells: _format_scores(scores[cells]),
            )
        )
    return "".join(parts).encode()
