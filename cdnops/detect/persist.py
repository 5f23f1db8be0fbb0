"""Saving and restoring the engine's state (np.savez), so a restart does not start cold."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cdnops.model import Anomaly, Detector

if TYPE_CHECKING:
    from cdnops.detect.engine import DetectionEngine

log = logging.getLogger("cdnops.detect")
FORMAT_VERSION = 6


def _arrays(engine: DetectionEngine) -> dict[str, Any]:
    t, tr = engine.temporal, engine.trend
    out: dict[str, Any] = {f"temporal.{k}": v for k, v in t.arrays.items()}
    out |= {"temporal.count": t.count, "temporal.seeded": t.seeded}
    se = engine.seasonal
    out |= {f"seasonal.{k}": v for k, v in se.arrays.items()}
    out |= {"seasonal.profile": se.profile, "seasonal.visits": se.visits}
    out |= {"seasonal.offset": se.offset, "seasonal.kind": se.kind}
    out |= {"seasonal.peak": se.peak, "seasonal.scale": se.scale}
    out |= {"trend.level": tr.level, "trend.slope": tr.slope, "trend.count": tr.count}
    out |= {"trend.resid": tr.resid, "trend.slope_slow": tr.slope_slow}
    out |= {"reach_runs": engine.reach_runs, "service_runs": engine.service_runs}
    for name in ("h_metric", "h_reach", "h_service"):
        h = getattr(engine, name)
        out |= {f"{name}.bits": h.bits, f"{name}.active": h.active, f"{name}.clean": h.clean}
    return out


def save(engine: DetectionEngine, path: Path) -> None:
    """Write atomically (temporary file, then rename) so a crash never leaves half a file."""
    meta = {
        "version": FORMAT_VERSION,
        "ids": list(engine.ids),
        "metrics": list(engine.cols.metrics),
        "trend_metrics": [engine.cols.metrics[j] for j in engine.cols.trend_cols],
        "services": list(engine.services),
        "tick_s": engine.tick_s,
        "seasonal_slot": engine.seasonal.slot,
        "active": [asdict(a) for a in engine.active],
    }
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **_arrays(engine))
    os.replace(tmp, path)


def restore(engine: DetectionEngine, path: Path) -> bool:
    """Load saved state into a fresh engine; on any problem log a warning and start cold."""
    if not path.exists():
        return False
    try:
        # our own handle: np.load leaks it when the zip directory is corrupt
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            _check(engine, meta)
            arrays = {k: data[k] for k in data.files if k != "meta"}
        _apply(engine, meta, arrays)
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        log.warning("detection state not restored, starting cold path=%s reason=%s", path, exc)
        engine.reset()
        return False
    log.info("detection state restored path=%s appliances=%d", path, len(engine.ids))
    return True


def _check(engine: DetectionEngine, meta: dict[str, Any]) -> None:
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"format version {meta.get('version')} is not {FORMAT_VERSION}")
    if tuple(meta["metrics"]) != engine.cols.metrics:
        raise ValueError("saved for other metrics")
    trend = [engine.cols.metrics[j] for j in engine.cols.trend_cols]
    if meta["trend_metrics"] != trend:
        raise ValueError("saved for other trend metrics")


def _apply(engine: DetectionEngine, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
    engine.reset(ids=tuple(meta["ids"]), services=tuple(meta["services"]))
    engine.tick_s = float(meta["tick_s"])
    engine.seasonal.slot = int(meta["seasonal_slot"])
    targets = _arrays(engine)
    for key, arr in targets.items():
        src = arrays[key]
        if src.shape != arr.shape or src.dtype != arr.dtype:
            raise ValueError(f"{key} has shape {src.shape} {src.dtype}, expected {arr.shape}")
    _assign(engine, arrays)
    engine.reporter.restore(
        Anomaly(**{**a, "detector": Detector(a["detector"])}) for a in meta["active"]
    )


def _assign(engine: DetectionEngine, arrays: dict[str, Any]) -> None:
    t, tr = engine.temporal, engine.trend
    for k in t.arrays:
        t.arrays[k] = arrays[f"temporal.{k}"].copy()
    t.count, t.seeded = arrays["temporal.count"].copy(), arrays["temporal.seeded"].copy()
    se = engine.seasonal
    for k in se.arrays:
        se.arrays[k] = arrays[f"seasonal.{k}"].copy()
    se.profile, se.visits = arrays["seasonal.profile"].copy(), arrays["seasonal.visits"].copy()
    se.peak = arrays["seasonal.peak"].copy()
    se.set_offset_array(
        arrays["seasonal.offset"].copy(),
        arrays["seasonal.kind"].copy(),
        arrays["seasonal.scale"].copy(),
    )
    tr.level, tr.slope = arrays["trend.level"].copy(), arrays["trend.slope"].copy()
    tr.count, tr.resid = arrays["trend.count"].copy(), arrays["trend.resid"].copy()
    tr.slope_slow = arrays["trend.slope_slow"].copy()
    engine.reach_runs = arrays["reach_runs"].copy()
    engine.service_runs = arrays["service_runs"].copy()
    for name in ("h_metric", "h_reach", "h_service"):
        h = getattr(engine, name)
        h.bits, h.active = arrays[f"{name}.bits"].copy(), arrays[f"{name}.active"].copy()
        h.clean = arrays[f"{name}.clean"].copy()
