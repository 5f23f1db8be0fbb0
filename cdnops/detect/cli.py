"""`cdnops detect`: backtest the daemon's detectors on a `timestamp,value` CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml
from pydantic import ValidationError

from cdnops.config.detect import DetectConfig
from cdnops.detect.engine import DetectionEngine
from cdnops.errors import CdnopsError, ConfigError, Issue
from cdnops.model import (
    Appliance,
    ApplianceState,
    FleetFrame,
    Inventory,
    PollFailure,
)

_APPLIANCE = "backtest"


class InputError(CdnopsError):
    """The CSV cannot be read as a `timestamp,value` series."""


@dataclass(frozen=True, slots=True)
class Series:
    """One series read from a CSV; `stamps` are the timestamps as written."""

    stamps: list[str]
    ts: np.ndarray  # Unix seconds
    values: np.ndarray  # NaN where the value is missing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cdnops detect`."""
    parser.add_argument("csv", type=Path, metavar="FILE.csv", help="timestamp,value CSV")
    parser.add_argument("--config", type=Path, help="daemon config file (its detect: section)")
    parser.add_argument("-o", "--output", type=Path, help="write timestamp,value,score CSV here")
    parser.add_argument("--plot", type=Path, help="draw series, score and detections (PNG)")
    parser.add_argument(
        "--metric", default="value", help="judge the series as this metric (its direction, bounds)"
    )


def run(args: argparse.Namespace) -> int:
    """Read, detect, write; exit 2 on bad input files."""
    try:
        cfg = load_detect_config(args.config) if args.config else DetectConfig()
        series = read_series(args.csv)
    except (ConfigError, InputError) as exc:
        print(f"cdnops detect: {exc}", file=sys.stderr)
        return 2
    scores, flags = backtest(series, cfg, args.metric)
    try:
        write_result(series, scores, flags, args.output)
    except OSError as exc:
        print(f"cdnops detect: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    if args.plot is not None:
        return plot(series, scores, flags, cfg, args.plot)
    return 0


def load_detect_config(path: Path) -> DetectConfig:
    """The `detect:` section of a full daemon config, or of a file holding only that section."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([_issue(path, f"cannot read: {exc}")]) from exc
    if isinstance(data, dict) and set(data) <= {"detect"}:
        try:
            return DetectConfig.model_validate(data.get("detect") or {})
        except ValidationError as exc:
            issues = [
                _issue(path, f"detect.{'.'.join(map(str, e['loc']))}: {e['msg']}")
                for e in exc.errors()
            ]
            raise ConfigError(issues) from None
    from cdnops.config.settings import load_settings

    return load_settings(path).detect


def _issue(path: Path, message: str) -> Issue:
    return Issue(str(path), 0, 0, "", message)


def read_series(path: Path) -> Series:
    """Read `timestamp,value` rows; timestamps are `YYYY-MM-DD HH:MM:SS` (UTC), ISO 8601 or
    Unix seconds; an empty or non-numeric value is a missing value."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    if not rows or not {"timestamp", "value"} <= set(rows[0]):
        raise InputError(f"{path}: need a header with `timestamp` and `value` and some rows")
    stamps = [r["timestamp"] or "" for r in rows]
    ts = np.array([_seconds(s, path, i + 2) for i, s in enumerate(stamps)])
    values = np.array([_number(r["value"]) for r in rows])
    return Series(stamps, ts, values)


def _seconds(text: str, path: Path, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{path}:{line}: timestamp {text!r} is not a date or Unix seconds"
        ) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _number(text: str | None) -> float:
    try:
        v = float(text or "nan")
    except ValueError:
        return float("nan")
    return v if np.isfinite(v) else float("nan")


def backtest(series: Series, cfg: DetectConfig, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Feed the series to the daemon's engine as a fleet of one appliance, one tick per row.

    Returns the score (0 where there is none yet) and whether an anomaly was active.
    """
    inv = Inventory((Appliance(_APPLIANCE, _APPLIANCE, "http://127.0.0.1/"),))
    engine = DetectionEngine(cfg, (metric,))
    scores = np.zeros(len(series.values))
    flags = np.zeros(len(series.values), np.bool_)
    ok = np.zeros(1, np.int8)
    serving = np.full(1, ApplianceState.SERVING, np.int8)
    for i, (ts, v) in enumerate(zip(series.ts, series.values, strict=True)):
        values = np.full((1, 1), v)
        frame = FleetFrame(
            ts=float(ts), seq=i, inventory=inv, site_index=np.zeros(1, np.int32),
            sites=(_APPLIANCE,), metrics=(metric,), values=values, valid=~np.isnan(values),
            failure=ok if not np.isnan(v) else np.full(1, PollFailure.BAD_BODY, np.int8),
            state=serving, uptime_s=np.full(1, np.nan), services=(),
            service_status=np.zeros((1, 0), np.int8),
        )  # fmt: skip
        result = engine.update(frame)
        s = result.scores[0, 0]
        scores[i] = s if np.isfinite(s) else 0.0
        flags[i] = any(a.metric == metric for a in result.active)
    return scores, flags


def write_result(series: Series, scores: np.ndarray, flags: np.ndarray, path: Path | None) -> None:
    """Write `timestamp,value,anomaly_score,anomaly` to `path` (or stdout)."""
    fh = open(path, "w", newline="", encoding="utf-8") if path else sys.stdout  # noqa: SIM115
    try:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score", "anomaly"])
        for stamp, v, s, f in zip(series.stamps, series.values, scores, flags, strict=True):
            w.writerow([stamp, "" if np.isnan(v) else repr(float(v)), f"{s:.6f}", int(f)])
    finally:
        if path:
            fh.close()


def plot(
    series: Series, scores: np.ndarray, flags: np.ndarray, cfg: DetectConfig, path: Path
) -> int:
    """Draw the series with detections and the score under it; 1 if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "cdnops detect: --plot needs matplotlib (pip install 'cdnops[plot]')", file=sys.stderr
        )
        return 1
    t = series.ts.astype("datetime64[s]")
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(12, 6), height_ratios=(3, 1))
    ax1.plot(t, series.values, lw=0.7, color="tab:blue", label="value")
    ax1.scatter(t[flags], series.values[flags], s=8, color="tab:red", label="anomaly", zorder=3)
    ax1.legend(loc="upper left")
    ax2.plot(t, scores, lw=0.7, color="tab:gray", label="anomaly score")
    ax2.axhline(cfg.temporal.threshold, color="tab:red", lw=0.7, ls="--", label="threshold")
    ax2.set_ylim(0, 1)
    ax2.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return 0
