"""NAB benchmark: `cdnops detect` with the default configuration on every labelled file."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def main(argv: list[str] | None = None) -> int:
    """Run the scorer with `cdnops detect` as the detector command and print the scores."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--nab",
        type=Path,
        default=Path("../shared/nab-dev"),
        help="NAB subset folder holding data/, labels/ and score.py",
    )
    parser.add_argument("--jobs", type=int, default=2, help="files scored in parallel")
    parser.add_argument("--out", type=Path, help="keep the per-file results here")
    args = parser.parse_args(argv)
    scorer = args.nab / "score.py"
    if not scorer.is_file():
        print(f"nab: no scorer at {scorer}", file=sys.stderr)
        return 2
    detector = [sys.executable, "-m", "cdnops", "detect", "{input}", "-o", "{output}"]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "runs"
        report = Path(tmp) / "scores.json"
        cmd = [
            sys.executable, str(scorer), "--name", "cdnops", "--out", str(out),
            "--jobs", str(args.jobs), "--cmd", " ".join(detector), "--json", str(report),
        ]  # fmt: skip
        print("command:", shlex.join(cmd), flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
            return 1
        scores = json.loads(report.read_text())["detectors"]["cdnops"]
    print(f"files scored in {elapsed:.0f} s with {args.jobs} jobs")
    print(f"{'profile':<22}{'NAB score':>10}{'threshold':>12}{'windows':>10}{'FP rows':>9}")
    for name in PROFILES:
        p = scores[name]
        found = f"{p['windows_detected']}/{p['windows']}"
        print(
            f"{name:<22}{p['normalized']:>10.2f}{p['threshold']:>12.4f}{found:>10}{p['fp_rows']:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
