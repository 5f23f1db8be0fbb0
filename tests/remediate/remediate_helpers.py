"""Frames, incidents, playbooks and a remediator wired to a simulator, for the remediation tests."""

from __future__ import annotations

import textwrap
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cdnops.config.remediate import RemediateConfig
from cdnops.incidents.model import Incident, IncidentKind, Key, Scope, Severity
from cdnops.model import (
    CONTRACT_METRICS,
    Anomaly,
    Appliance,
    ApplianceState,
    Detector,
    FleetFrame,
    Inventory,
    PollFailure,
    ServiceStatus,
)
from cdnops.remediate.audit import RemediationBus, RemediationEvent
from cdnops.remediate.engine import Remediator
from cdnops.remediate.loader import PlaybookSet, load_playbooks
from cdnops.sim.server import SimServer
from cdnops.store.db import Store

TOKEN = "remediate-token"
SERVICES = ("nginx", "cache", "bgp")


def inventory_of(entries: list[dict[str, object]]) -> Inventory:
    """An Inventory from the simulator's entries."""
    return Inventory(tuple(Appliance(str(e["id"]), str(e["site"]), str(e["url"])) for e in entries))


class Frames:
    """Builds frames tick after tick: every appliance serving and healthy unless told."""

    def __init__(self, inv: Inventory) -> None:
        self.inv = inv
        self.seq = 0
        self.ts = 1_000.0

    def frame(
        self,
        states: Mapping[str, ApplianceState] | None = None,
        down: tuple[str, ...] = (),
        services: Mapping[str, Mapping[str, ServiceStatus]] | None = None,
        not_polled: tuple[str, ...] = (),
    ) -> FleetFrame:
        n = len(self.inv.appliances)
        sites = self.inv.sites
        index = self.inv.index()
        state = np.full(n, ApplianceState.SERVING, np.int8)
        failure = np.full(n, PollFailure.OK, np.int8)
        status = np.full((n, len(SERVICES)), ServiceStatus.RUNNING, np.int8)
        for aid, st in (states or {}).items():
            state[index[aid]] = st.value
        for aid in down:
            failure[index[aid]] = PollFailure.TIMEOUT
            state[index[aid]] = ApplianceState.UNKNOWN
        for aid in not_polled:  # no answer completed in this tick: nothing known
            failure[index[aid]] = PollFailure.NOT_POLLED
            state[index[aid]] = ApplianceState.UNKNOWN
            status[index[aid]] = ServiceStatus.ABSENT
        for aid, per in (services or {}).items():
            for name, svc in per.items():
                status[index[aid], SERVICES.index(name)] = svc.value
        self.seq += 1
        self.ts += 0.2
        values = np.full((n, len(CONTRACT_METRICS)), 0.5)
        return FleetFrame(
            ts=self.ts,
            seq=self.seq,
            inventory=self.inv,
            site_index=np.array([sites.index(a.site) for a in self.inv.appliances], np.int32),
            sites=sites,
            metrics=CONTRACT_METRICS,
            values=values,
            valid=np.ones_like(values, dtype=bool),
            failure=failure,
            state=state,
            uptime_s=np.full(n, 1000.0),
            services=SERVICES,
            service_status=status,
        )


def incident(
    appliance: str,
    site: str,
    *,
    metric: str = "service:nginx",
    scope: Scope = Scope.APPLIANCE,
    parent: str | None = None,
    silenced_by: str | None = None,
    inc_id: str | None = None,
) -> Incident:
    """An open, active incident as the tracker makes them."""
    kind = (
        IncidentKind.SERVICE_FAILED
        if metric.startswith("service:")
        else IncidentKind.UNREACHABLE
        if metric == "reachability"
        else IncidentKind.METRIC
    )
    detector = {IncidentKind.SERVICE_FAILED: Detector.SERVICE}.get(kind, Detector.BOUNDS)
    anomaly = Anomaly(appliance, site, metric, detector, 1.0, 0.0, 1.0, 900.0, f"{metric} is bad")
    subject = appliance if scope is Scope.APPLIANCE else site
    return Incident(
        id=inc_id or f"inc-{subject}-{metric}",
        key=Key(scope, subject, kind, metric),
        site=site,
        metric=metric,
        severity=Severity.CRITICAL,
        opened_ts=900.0,
        first_seen_ts=900.0,
        last_seen_ts=1000.0,
        parent=parent,
        silenced_by=silenced_by,
        anomalies=(anomaly,),
    )


def playbooks(tmp_path: Path, text: str) -> PlaybookSet:
    """Playbooks from YAML text (dedented)."""
    path = tmp_path / "playbooks.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_playbooks([path])


RESTART = """\
playbooks:
  - name: restart-nginx
    trigger: {kind: service_failed, metric: "service:nginx"}
    steps:
      - action: restart_service
        params: {service: "{{ incident.metric[8:] }}"}
"""


def config(**overrides: Any) -> RemediateConfig:
    """Fast settings for tests."""
    base: dict[str, Any] = {"action_poll_interval_s": 0.02, "cooldown_s": 60.0}
    return RemediateConfig.model_validate({**base, **overrides})


def site_ids(sim: SimServer) -> tuple[str, list[str]]:
    """The first site of the simulated fleet and its appliances."""
    site = str(sim.inventory()[0]["site"])
    return site, [str(a["id"]) for a in sim.inventory() if a["site"] == site]


def actions(sim: SimServer) -> list[tuple[str, str]]:
    """(appliance, action) of every action the simulator received, in order."""
    return [
        (str(r["appliance"]), str(r["action"]))
        for r in sim.truth
        if r["event"] == "action_received"
    ]


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def remediator(
    store_path: Path,
    pbs: PlaybookSet,
    cfg: RemediateConfig,
    clock: Clock | None = None,
    **kwargs: Any,
) -> AsyncIterator[tuple[Remediator, list[RemediationEvent]]]:
    """A remediator on a store file, with the events it published (`kwargs` go to it)."""
    events: list[RemediationEvent] = []
    bus = RemediationBus()
    bus.subscribe(events.append)
    with Store(store_path) as store:
        if clock is not None:
            kwargs["clock"] = clock
        async with Remediator(cfg, pbs, store, bus, token=TOKEN, **kwargs) as rem:
            yield rem, events


async def tick_until_idle(
    rem: Remediator, make: Callable[[], FleetFrame], *, every_s: float = 0.05, timeout_s: float = 5
) -> None:
    """Push a frame every `every_s` (the poll cadence verification follows) until no
    execution runs; fails past `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while rem.running:
        assert time.monotonic() < deadline, f"still running: {list(rem.running)}"
        rem.feed.push(make())
        try:
            await rem.wait_idle(every_s)
        except TimeoutError:
            continue
