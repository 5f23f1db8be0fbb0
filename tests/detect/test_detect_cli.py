"""`cdnops detect` as a real subprocess on small CSV files."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = 400
STEP_AT = 300


def cdnops(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdnops", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def series(tmp_path: Path) -> Path:
    """NAB-format CSV: noise around 50, a step to 80 at row 300, two missing values."""
    rng = np.random.default_rng(4)
    path = tmp_path / "series.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        for i in range(ROWS):
            minute = i * 5
            stamp = f"2015-02-{1 + minute // 1440:02d} {minute // 60 % 24:02d}:{minute % 60:02d}:00"
            v = 50.0 + rng.normal() + (30.0 if i >= STEP_AT else 0.0)
            w.writerow([stamp, "" if i in (100, 101) else f"{v:.3f}"])
    return path


def test_backtest_writes_scores_and_flags_the_step(series: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    done = cdnops("detect", series, "-o", out)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "anomaly"]
    assert len(rows) == ROWS
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert ((scores >= 0) & (scores <= 1)).all()
    flagged = [i for i, r in enumerate(rows) if r["anomaly"] == "1"]
    assert flagged
    assert STEP_AT <= flagged[0] < STEP_AT + 5
    assert all(i >= STEP_AT for i in flagged)
    assert rows[100]["value"] == ""


def test_plot_writes_a_png(series: Path, tmp_path: Path) -> None:
    png = tmp_path / "plot.png"
    done = cdnops("detect", series, "-o", tmp_path / "o.csv", "--plot", png)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_with_only_a_detect_section(series: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "detect.yaml"
    cfg.write_text("detect:\n  temporal:\n    threshold: 0.99\n")
    out = tmp_path / "o.csv"
    done = cdnops("detect", series, "--config", cfg, "-o", out)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as fh:
        assert not any(r["anomaly"] == "1" for r in csv.DictReader(fh))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,val\n1,2\n", "need a header with `timestamp` and `value`"),
        ("timestamp,value\nyesterday,3\n", ":2: timestamp 'yesterday' is not a date"),
    ],
)
def test_bad_csv_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    done = cdnops("detect", bad)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_config_is_a_clear_error(series: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "detect.yaml"
    cfg.write_text("detect:\n  temporal:\n    threshold: 7\n")
    done = cdnops("detect", series, "--config", cfg)
    assert done.returncode == 2
    assert "detect.temporal.threshold: Input should be less than or equal to 1" in done.stderr
