"""Helpers for the HTTP side's tests: small fleet frames, detection results, exposition parsing."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from cdnops.model import (
    Anomaly,
    DetectionResult,
    Detector,
    FleetFrame,
)

FrameFactory = Callable[..., FleetFrame]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def anomaly(appliance: str, site: str, detector: Detector, metric: str = "cpu_util") -> Anomaly:
    """An anomaly with plausible values."""
    return Anomaly(
        appliance=appliance,
        site=site,
        metric=metric,
        detector=detector,
        value=0.99,
        baseline=0.4,
        score=0.9,
        since_ts=1_764_547_100.0,
        explanation=f"{metric} high",
    )


def detection(
    frame: FleetFrame,
    *,
    active: Sequence[Anomaly] = (),
    entered: Sequence[Anomaly] = (),
    scores: np.ndarray | None = None,
) -> DetectionResult:
    """A DetectionResult for `frame`; scores default to NaN everywhere."""
    return DetectionResult(
        ts=frame.ts,
        seq=frame.seq,
        scores=scores if scores is not None else np.full(frame.values.shape, np.nan),
        active=tuple(active),
        entered=tuple(entered),
        cleared=(),
    )


def parse_samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """The `parse_samples` key of one sample."""
    return (name, frozenset(labels.items()))


async def promtool_check(text: str) -> tuple[int, str]:
    """Run `promtool check metrics` on an exposition; (exit code, combined output)."""
    promtool = shutil.which("promtool")
    assert promtool is not None
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(text.encode()), timeout=20)
    return proc.returncode if proc.returncode is not None else -1, out.decode()
