"""Per-appliance poll bookkeeping, built once per inventory (not per poll)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cdnops.model import Appliance, HealthFormat, Inventory
from cdnops.poll.schedule import phase_fraction
from cdnops.poll.wire import Done, Endpoint, endpoint


class Batch:
    """The polls a `tick_once` waits for."""

    __slots__ = ("future", "left")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.left = 0

    def one_done(self) -> None:
        """One of the polls completed."""
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(None)


class Target:
    """One appliance as the poller sees it: row, request, phase and transition state."""

    __slots__ = (
        "appliance",
        "bad_url",
        "batch",
        "done",
        "endpoint",
        "in_flight",
        "last",
        "phase",
        "prometheus",
        "removed",
        "retries",
        "row",
        "started",
    )

    def __init__(self, appliance: Appliance, row: int, phase: float) -> None:
        self.row = row
        self.phase = phase
        self.in_flight = False
        self.removed = False
        self.started = 0.0
        self.last = -1  # PollFailure of the last poll; -1 before the first
        self.retries = 0  # confirmation re-polls since the last good poll
        self.batch: Batch | None = None
        self.done: Done = _unbound
        self.appliance = appliance
        self.endpoint: Endpoint | None = None
        self.bad_url = ""
        self.prometheus = False
        self.point_at(appliance)

    def point_at(self, appliance: Appliance) -> None:
        """(Re)build the request for the appliance's URL and format."""
        self.appliance = appliance
        self.prometheus = appliance.health_format is HealthFormat.PROMETHEUS
        base = appliance.url.rstrip("/")
        try:
            if self.prometheus:
                self.endpoint = endpoint(base + "/metrics", accept="text/plain")
            else:
                self.endpoint = endpoint(base + "/health")
            self.bad_url = ""
        except ValueError as exc:
            self.endpoint, self.bad_url = None, f"cannot poll: {exc}"


def _unbound(failure: int, body: bytes | None, detail: str) -> None:
    raise RuntimeError("Target.done was not bound to a poller")


def build_targets(
    inventory: Inventory,
    previous: dict[str, Target],
    interval_s: float,
    bind: Callable[[Target], Done] | None = None,
) -> dict[str, Target]:
    """Targets for an inventory: kept ids reuse their Target (state, phase); removed are marked."""
    out: dict[str, Target] = {}
    for row, appliance in enumerate(inventory.appliances):
        target = previous.get(appliance.id)
        if target is None:
            target = Target(appliance, row, phase_fraction(appliance.id) * interval_s)
            if bind is not None:
                target.done = bind(target)
        else:
            target.row = row
            if target.appliance != appliance:
                target.point_at(appliance)
        out[appliance.id] = target
    for old_id, target in previous.items():
        if old_id not in out:
            target.removed = True
    return out
