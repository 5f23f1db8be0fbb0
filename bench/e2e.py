"""Benchmark: a daemon with the shipped playbooks against a simulated fleet with mixed faults.

Run: python bench/e2e.py [--appliances 1200] [--sites 60] [--interval 1.0] [--per-kind 8]
         [--timeout 240] [--seed 5] [--group-wait SECONDS] [--phase random|after-tick]
         [--confirm-retries 2] [--sim-process]

Prints, per fault kind, the time from injection to the first right action and to
recovery, and the false actions (on healthy appliances, of the wrong kind, or on the
appliances of a site in an upstream outage); then where that time goes: injection ->
first evidence -> first anomaly -> incident opened -> playbook matched -> action
received. Simulator and daemon share one process and one event loop (unless
--sim-process), so at large fleets the simulator's cost slows the daemon's ticks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
import yaml

from cdnops.app import Daemon, load_all
from cdnops.sim.server import SimServer, SimSpec

TOKEN = "bench-e2e-token"
PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
# Realistic action durations are shrunk by this much, and the playbooks' times with them.
SCALE = 0.05
SCALED_KEYS = {"within_s", "hold_s", "seconds", "timeout_s", "backoff_s", "cooldown_s"}

# kind -> (params, the right actions, whether it is acute, what counts as recovered)
FAULTS: dict[str, tuple[dict[str, Any], frozenset[str], bool, str]] = {
    "service_crash": ({"service": "nginx"}, frozenset({"restart_service"}), True, "fixed"),
    "hung": ({}, frozenset({"reboot"}), True, "fixed"),
    "cache_corruption": ({}, frozenset({"purge_cache"}), True, "fixed"),
    "memory_leak": ({"tau_s": 20.0}, frozenset({"restart_service", "reboot"}), False, "fixed"),
    "disk_failure": ({"errors_per_s": 50.0}, frozenset({"collect_diagnostics", "drain"}), False,
                     "drained"),
    "nic_degradation": ({}, frozenset({"collect_diagnostics", "drain"}), True, "drained"),
    "thermal": ({"rise_c": 400.0}, frozenset({"drain"}), False, "drained"),
}  # fmt: skip


@dataclass
class Injected:
    """One fault and what became of it."""

    kind: str
    target: str
    ts: float
    first_right_s: float | None = None
    recovered_s: float | None = None
    actions: list[str] = field(default_factory=list)


def scaled(node: Any) -> Any:
    """The playbook tree with every duration multiplied by SCALE."""
    if isinstance(node, dict):
        return {
            k: v * SCALE if k in SCALED_KEYS and isinstance(v, int | float) else scaled(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [scaled(v) for v in node]
    return node


class Fleet(Protocol):
    """What the bench needs of the simulator, in this process or in its own."""

    def inventory(self) -> list[dict[str, object]]: ...
    def write_inventory(self, path: Path) -> None: ...
    @property
    def truth(self) -> list[dict[str, object]]: ...


class SimProcess:
    """The simulator as a `cdnops simulate` subprocess, so that serving 1,000 appliances
    does not share the daemon's event loop (the two still share the machine's cores)."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self._args = args
        self._inventory_path = root / "sim-inventory.yaml"
        self._truth_path = root / "sim-truth.jsonl"
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base = ""
        self._inventory: list[dict[str, object]] = []

    async def __aenter__(self) -> SimProcess:
        a = self._args
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cdnops", "simulate", "--port", "0",
            "--appliances", str(a.appliances), "--sites", str(a.sites), "--seed", str(a.seed),
            "--action-delay-scale", str(SCALE), "--inventory-out", str(self._inventory_path),
            "--truth-out", str(self._truth_path), "--token-env", "CDNOPS_BENCH_TOKEN",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        m = re.search(rb"listening on (http://\S+)", line)
        if m is None:
            raise RuntimeError(f"cdnops simulate did not start: {line!r}")
        self._base = m.group(1).decode()
        self._inventory = yaml.safe_load(self._inventory_path.read_text())["appliances"]
        self._session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 20)

    def inventory(self) -> list[dict[str, object]]:
        return self._inventory

    def write_inventory(self, path: Path) -> None:
        shutil.copyfile(self._inventory_path, path)

    @property
    def truth(self) -> list[dict[str, object]]:
        with self._truth_path.open("rb") as f:
            return [orjson.loads(line) for line in f if line.endswith(b"\n")]

    async def inject(self, kind: str, target: str, duration_s: float | None, **params: Any) -> None:
        assert self._session is not None
        body = {"kind": kind, "target": target, "duration_s": duration_s, "params": params}
        async with self._session.post(f"{self._base}/_sim/faults", json=body) as resp:
            if resp.status != 201:
                raise RuntimeError(f"inject {kind} on {target}: {resp.status} {await resp.text()}")


@contextlib.asynccontextmanager
async def fleet(args: argparse.Namespace, root: Path) -> AsyncIterator[SimServer | SimProcess]:
    """The simulator, in its own process (`--sim-process`) or in this one."""
    if args.sim_process:
        async with SimProcess(args, root) as proc:
            yield proc
        return
    spec = SimSpec(appliances=args.appliances, sites=args.sites, seed=args.seed,
                   action_delay_scale=SCALE)  # fmt: skip
    async with SimServer(spec, token=TOKEN) as sim:
        yield sim


async def inject_fault(
    sim: SimServer | SimProcess, kind: str, target: str, duration_s: float | None = None,
    **params: Any,
) -> None:  # fmt: skip
    """Start a fault in the simulator, wherever it runs."""
    if isinstance(sim, SimProcess):
        await sim.inject(kind, target, duration_s, **params)
    else:
        sim.inject(kind, target, duration_s=duration_s, **params)


def write_setup(root: Path, sim: Fleet, args: argparse.Namespace) -> Path:
    sim.write_inventory(root / "inventory.yaml")
    (root / "playbooks").mkdir()
    for src in PLAYBOOKS.glob("*.yaml"):
        data = scaled(yaml.safe_load(src.read_text()))
        (root / "playbooks" / src.name).write_text(yaml.safe_dump(data), encoding="utf-8")
    config = {
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_BENCH_TOKEN"},
        "logging": {"level": "warning"},
        # the default's timeout: 2 s of a 10 s interval
        "poll": {"interval_s": args.interval, "timeout_s": args.interval * 0.2,
                 "concurrency": 1024, "confirm_retries": args.confirm_retries},
        "http": {"port": 0},
        "detect": {"warmup_ticks": 15},
        "incidents": {"group_wait_s": args.group_wait, "grouping_window_s": 10 * args.interval},
        "remediation": {"action_poll_interval_s": 0.1, "max_concurrent": 100},
    }  # fmt: skip
    path = root / "cdnops.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def plan(sim: Fleet, args: argparse.Namespace) -> tuple[list[tuple[str, str]], str]:
    """(kind, appliance) for every fault, each in its own site; and the outage's site."""
    rng = random.Random(args.seed)
    by_site: dict[str, list[str]] = {}
    for a in sim.inventory():
        by_site.setdefault(str(a["site"]), []).append(str(a["id"]))
    sites = sorted(by_site)
    rng.shuffle(sites)
    outage_site = sites.pop()
    faults = []
    for i, kind in enumerate(k for k in FAULTS for _ in range(args.per_kind)):
        site = sites[i % len(sites)]
        faults.append((kind, rng.choice(by_site[site])))
        by_site[site] = [a for a in by_site[site] if a != faults[-1][1]]
    return faults, outage_site


def settle(sim: Fleet, injected: dict[str, Injected], outage: set[str]) -> list[str]:
    """Fill in first right action and recovery from the simulator's truth; false actions."""
    false: list[str] = []
    drained: set[str] = set()
    for r in sim.truth:
        event, who, ts = r["event"], str(r.get("appliance", "")), float(str(r["ts"]))
        if event == "action_received" and r["answer_status"] == 202:
            action = str(r["action"])
            inj = injected.get(who)
            if inj is None or who in outage or action not in FAULTS[inj.kind][1]:
                false.append(f"{action} on {who}" + (" (site outage)" if who in outage else ""))
            elif inj.first_right_s is None:
                inj.first_right_s = ts - inj.ts
        elif event == "action_finished" and r["action"] == "drain" and r["status"] == "succeeded":
            drained.add(who)
            _recovered(injected.get(who), ts, "drained")
        elif event == "fault_fixed":
            for a in r["appliances"]:  # type: ignore[attr-defined]
                _recovered(injected.get(str(a)), ts, "fixed")
    return false


def _recovered(inj: Injected | None, ts: float, how: str) -> None:
    if inj is not None and inj.recovered_s is None and FAULTS[inj.kind][3] == how:
        inj.recovered_s = ts - inj.ts


async def scenario(args: argparse.Namespace, root: Path) -> int:
    async with fleet(args, root) as sim:
        path = write_setup(root, sim, args)
        daemon = Daemon(path, load_all(path))
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        await asyncio.wait_for(daemon.wait_ticks(20), 120)
        faults, outage_site = plan(sim, args)
        injected: dict[str, Injected] = {}
        phases = _phases(args, len(faults) + 1)

        async def inject(delay_s: float, kind: str, target: str) -> None:
            await asyncio.sleep(delay_s)
            if kind == "site_upstream_outage":
                await inject_fault(sim, kind, target, duration_s=args.timeout)
            else:
                await inject_fault(sim, kind, target, **FAULTS[kind][0])
            injected[target] = Injected(kind, target, time.time())

        await asyncio.gather(
            *(inject(d, k, t) for d, (k, t) in zip(phases, faults, strict=False)),
            inject(phases[-1], "site_upstream_outage", outage_site),
        )
        outage_ts = injected.pop(outage_site).ts
        outage = {str(a["id"]) for a in sim.inventory() if a["site"] == outage_site}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            await asyncio.wait_for(daemon.wait_ticks(1), 30)
            if all(_done(i) for i in _settled(sim, injected, outage)):
                break
        false = settle(sim, injected, outage)
        escalations = [
            r for r in daemon.remediator.audit.store.audit()
            if r.event == "escalated" and r.playbook == "escalate-site-outage"
        ]  # fmt: skip
        ticks = daemon.ticks
        where = stages(daemon, injected)
        daemon.request_stop()
        await asyncio.wait_for(task, 60)
    report(args, injected, false, escalations[0].ts - outage_ts if escalations else None, ticks)
    report_stages(args, where)
    return 0 if not false and all(_done(i) for i in injected.values()) else 1


STAGES = ("evidence", "seen", "opened", "matched", "action")


def stages(daemon: Daemon, injected: dict[str, Injected]) -> dict[str, dict[str, list[float]]]:
    """Per fault kind, seconds from injection to each stage of the way to the right action:
    the tick of the first evidence (`evidence`: the first firing tick or failed poll, where
    the group wait starts), the first anomaly's tick (`seen`, after the hysteresis), the
    incident opened, the playbook matched, the action received by the appliance."""
    store = daemon.remediator.audit.store
    opened: dict[str, tuple[float | None, float, float]] = {}
    for row in store.load_incidents(resolved_since=0.0):
        scope, _, rest = row.key.partition("/")
        subject = rest.split("/", 1)[0]
        if scope == "appliance" and subject in injected and subject not in opened:
            onsets = [a["onset_ts"] for a in row.body["anomalies"] if a.get("onset_ts")]
            evidence = min(onsets) if onsets else None
            opened[subject] = (evidence, float(row.body["first_seen_ts"]), row.opened_ts)
    matched: dict[str, float] = {}
    for a in store.audit():
        if a.event == "matched" and a.subject in injected:
            matched.setdefault(a.subject, a.ts)
    out: dict[str, dict[str, list[float]]] = {}
    for inj in injected.values():
        per = out.setdefault(inj.kind, {s: [] for s in STAGES})
        evidence_ts, seen_ts, opened_ts = opened.get(inj.target, (None, None, None))
        times = (evidence_ts, seen_ts, opened_ts, matched.get(inj.target))
        for stage, ts in zip(STAGES, times, strict=False):
            if ts is not None:
                per[stage].append(ts - inj.ts)
        if inj.first_right_s is not None:
            per["action"].append(inj.first_right_s)
    return out


def report_stages(args: argparse.Namespace, where: dict[str, dict[str, list[float]]]) -> None:
    """Where the time to the right action goes, in poll intervals (medians)."""
    print("where the time goes, in poll intervals from injection (medians):")
    print(f"{'fault':<17} " + " ".join(f"{s:>8}" for s in STAGES))
    for kind, per in where.items():
        cells = [
            f"{statistics.median(per[s]) / args.interval:>8.2f}" if per[s] else f"{'-':>8}"
            for s in STAGES
        ]
        print(f"{kind:<17} " + " ".join(cells))


def _phases(args: argparse.Namespace, n: int) -> list[float]:
    """When to inject each fault after a tick ends, in seconds.

    Faults do not wait for polls: `random` spreads them uniformly over one poll interval
    (what a fault in production sees on average); `after-tick` injects them all right
    after a tick, just after a poll started (the worst phase: a whole interval to the
    next poll).
    """
    if args.phase == "after-tick":
        return [0.0] * n
    rng = random.Random(args.seed + 1)
    return [rng.uniform(0.0, args.interval) for _ in range(n)]


def _settled(sim: Fleet, injected: dict[str, Injected], outage: set[str]) -> list[Injected]:
    copy = {k: Injected(v.kind, v.target, v.ts) for k, v in injected.items()}
    settle(sim, copy, outage)
    return list(copy.values())


def _done(inj: Injected) -> bool:
    return inj.first_right_s is not None and inj.recovered_s is not None


def report(
    args: argparse.Namespace,
    injected: dict[str, Injected],
    false: list[str],
    outage_escalation_s: float | None,
    ticks: int,
) -> None:
    where = "in its own process" if args.sim_process else "in this loop"
    print(f"# python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{args.appliances} appliances in {args.sites} sites, poll every {args.interval:g}s, "
          f"timeout {args.interval * 0.2:g}s, confirm_retries {args.confirm_retries}, "
          f"group_wait {args.group_wait:g}s, fault phase {args.phase}, simulator {where}, "
          f"{ticks} ticks")  # fmt: skip
    print(f"{'fault':<17} {'n':>3} {'right action s (median/max)':>29} "
          f"{'recovered s (median/max)':>26} {'in 2 polls':>10}")  # fmt: skip
    for kind, (_, _, acute, _) in FAULTS.items():
        rows = [i for i in injected.values() if i.kind == kind]
        first = [i.first_right_s for i in rows if i.first_right_s is not None]
        rec = [i.recovered_s for i in rows if i.recovered_s is not None]
        within = sum(1 for t in first if t <= 2 * args.interval)
        print(f"{kind + ('*' if acute else ''):<17} {len(rows):>3} {_stat(first, len(rows)):>29} "
              f"{_stat(rec, len(rows)):>26} {within:>7}/{len(rows)}")  # fmt: skip
    esc = "none" if outage_escalation_s is None else f"{outage_escalation_s:.1f}s"
    print(f"site_upstream_outage: escalated after {esc}, appliance actions in that site: "
          f"{sum('site outage' in f for f in false)}")  # fmt: skip
    print(f"false actions: {len(false)}" + "".join(f"\n  {f}" for f in false))
    print("* acute: target median time to the right action <= 2 poll intervals")


def _stat(values: list[float], n: int) -> str:
    if not values:
        return f"none of {n}"
    missing = f" ({n - len(values)} missing)" if len(values) < n else ""
    return f"{statistics.median(values):.1f} / {max(values):.1f}{missing}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 8 faults of each kind, each in its own site: a median of 3 moved by a few tenths of
    # an interval from one seed to the next
    parser.add_argument("--appliances", type=int, default=1200)
    parser.add_argument("--sites", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, seconds")
    parser.add_argument("--per-kind", type=int, default=8, help="faults of each kind")
    parser.add_argument("--timeout", type=float, default=240.0, help="give up after, seconds")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--sim-process",
        action="store_true",
        help="run the simulator as a `cdnops simulate` subprocess instead of in this loop",
    )
    parser.add_argument(
        "--phase",
        choices=("random", "after-tick"),
        default="random",
        help="when in the poll cycle faults start (default: uniformly over one interval)",
    )
    parser.add_argument(
        "--group-wait", type=float, help="incidents.group_wait_s (default: one poll interval)"
    )
    parser.add_argument(
        "--confirm-retries",
        type=int,
        default=2,
        help="poll.confirm_retries (default 2, the daemon's; 0: no re-polls of a failed poll)",
    )
    args = parser.parse_args()
    if args.group_wait is None:
        args.group_wait = args.interval
    if args.sites < len(FAULTS) * args.per_kind + 1:
        parser.error(f"needs at least {len(FAULTS) * args.per_kind + 1} sites (one per fault)")
    os.environ["CDNOPS_BENCH_TOKEN"] = TOKEN
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="cdnops-bench-e2e-") as tmp:
        return asyncio.run(scenario(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
