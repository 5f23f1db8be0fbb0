"""Benchmark of inventory loading: YAML parse with marks, validation, `Inventory` build.

Run from the repository root:
`python bench/inventory_load.py [--appliances N] [--repeat R]`.
Prints best and median CPU seconds of R runs per stage, plus a pure-Python reference loop
so figures from different machines can be compared; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdnops.config.inventory import inventory_from_document, load_inventory
from cdnops.config.yamlload import load_yaml


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) CPU time of `fn` in seconds: less disturbed by other processes."""
    runs = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        runs.append(time.process_time() - started)
    return min(runs), statistics.median(runs)


def write_inventory(path: Path, n: int) -> None:
    """An inventory in the contract's shape: block mappings, a labels flow mapping."""
    lines = ["appliances:"]
    for i in range(n):
        site = f"site{i % 200:03d}"
        lines += [
            f"  - id: {site}-oca-{i:05d}",
            f"    site: {site}",
            f"    url: http://127.0.0.1:9100/a/{site}-oca-{i:05d}",
            "    labels: {region: us-west, model: storage-v3}",
        ]
    path.write_text("\n".join(lines) + "\n")


def reference_loop() -> None:
    """Ten million additions: a yardstick for this machine's Python speed."""
    total = 0
    for i in range(10_000_000):
        total += i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inventory.yaml"
        write_inventory(path, args.appliances)
        text = path.read_text()
        doc = load_yaml(path)
        stages: dict[str, Callable[[], object]] = {
            "reference: 10M-iteration Python loop": reference_loop,
            "reference: yaml.load(CSafeLoader), no marks": lambda: yaml.load(
                text, Loader=yaml.CSafeLoader
            ),
            "load_yaml (parse, marks, duplicate keys)": lambda: load_yaml(path),
            "validate + build Inventory": lambda: inventory_from_document(doc),
            "load_inventory (total)": lambda: load_inventory(path),
        }
        size_mb = path.stat().st_size / 1e6
        print(f"{args.appliances} appliances, {size_mb:.1f} MB, best/median of {args.repeat}:")
        for name, fn in stages.items():
            best, median = timed(fn, args.repeat)
            print(f"  {name:48s} {best:7.3f} s  {median:7.3f} s")


if __name__ == "__main__":
    main()
