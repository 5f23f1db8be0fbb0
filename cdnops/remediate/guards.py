"""Safety rails: each answers whether an execution (or a step) may go ahead, and why not."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from cdnops.config.remediate import CapacityConfig, RemediateConfig
from cdnops.model import ApplianceState, FleetFrame, PollFailure
from cdnops.store.db import Store

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One guard's answer; `reason` says why it blocks (or what it checked)."""

    guard: str
    ok: bool
    reason: str = ""


@dataclass
class Breaker:
    """A playbook's circuit breaker (persisted in the store)."""

    state: str = CLOSED
    failures: list[float] = field(default_factory=list)
    opened_ts: float = 0.0
    probing: bool = False  # the half-open probe execution is running


class Guards:
    """Cooldowns and breakers (persisted), rate limits and capacity (live)."""

    def __init__(
        self, config: RemediateConfig, store: Store, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self._store = store
        self._clock = clock
        self._cooldowns = store.cooldowns(clock())
        self._breakers = {
            name: Breaker(b["state"], list(b["failures"]), float(b["opened_ts"]))
            for name, b in store.breakers().items()
        }
        self._starts: dict[str, deque[float]] = {}

    # -- cooldown -------------------------------------------------------------------
    def cooldown(self, playbook: str, subject: str) -> Verdict:
        """Blocks while the (playbook, subject) cooldown runs."""
        until = self._cooldowns.get((playbook, subject), 0.0)
        left = until - self._clock()
        if left > 0:
            return Verdict("cooldown", False, f"cooling down for another {left:.0f}s")
        return Verdict("cooldown", True)

    def start_cooldown(self, playbook: str, subject: str, seconds: float) -> None:
        """Start a cooldown; it is in the store, so a restart keeps it."""
        if seconds <= 0:
            return
        until = self._clock() + seconds
        self._cooldowns[(playbook, subject)] = until
        self._store.set_cooldown(playbook, subject, until)

    # -- rate limit -----------------------------------------------------------------
    def rate(self, playbook: str) -> Verdict:
        """At most `rate_limit_count` starts of a playbook within `rate_limit_window_s`."""
        starts = self._starts.setdefault(playbook, deque())
        now = self._clock()
        while starts and starts[0] <= now - self.config.rate_limit_window_s:
            starts.popleft()
        if len(starts) >= self.config.rate_limit_count:
            window = self.config.rate_limit_window_s
            return Verdict("rate_limit", False, f"{len(starts)} starts within {window:g}s")
        return Verdict("rate_limit", True)

    def note_start(self, playbook: str) -> None:
        """Count a start towards the rate limit (and claim the half-open probe)."""
        self._starts.setdefault(playbook, deque()).append(self._clock())
        breaker = self._breakers.get(playbook)
        if breaker is not None and breaker.state == HALF_OPEN:
            breaker.probing = True

    # -- circuit breaker ------------------------------------------------------------
    def breaker(self, playbook: str) -> Verdict:
        """Open: blocked until the cool-off ends; then one probe execution at a time."""
        b = self._breakers.get(playbook)
        if b is None or b.state == CLOSED:
            return Verdict("breaker", True)
        if b.state == OPEN:
            left = b.opened_ts + self.config.breaker.cool_off_s - self._clock()
            if left > 0:
                n = len(b.failures)
                return Verdict("breaker", False, f"open after {n} failures, {left:.0f}s left")
            b.state = HALF_OPEN
            self._save(playbook, b)
        if b.probing:
            return Verdict("breaker", False, "half-open: a probe execution is running")
        return Verdict("breaker", True, "half-open: this execution is the probe")

    def release_probe(self, playbook: str) -> None:
        """An execution that proves nothing (dry run, blocked, interrupted) frees the probe."""
        b = self._breakers.get(playbook)
        if b is not None:
            b.probing = False

    def breaker_state(self, playbook: str) -> str:
        """closed, open or half_open."""
        b = self._breakers.get(playbook)
        return CLOSED if b is None else b.state

    def record_result(self, playbook: str, *, ok: bool) -> str | None:
        """Count an execution's outcome; returns `opened` or `closed` when the state changed."""
        b = self._breakers.setdefault(playbook, Breaker())
        now = self._clock()
        was = b.state
        b.probing = False
        if ok:
            if b.state == HALF_OPEN:
                b.state, b.failures = CLOSED, []
        else:
            cfg = self.config.breaker
            b.failures = [t for t in b.failures if t > now - cfg.window_s] + [now]
            if b.state == HALF_OPEN or len(b.failures) >= cfg.failures:
                b.state, b.opened_ts = OPEN, now
        self._save(playbook, b)
        if b.state != was and b.state in (OPEN, CLOSED):
            return "opened" if b.state == OPEN else "closed"
        return None

    def reset_breaker(self, playbook: str) -> bool:
        """An operator closes a breaker; returns whether it was not closed."""
        b = self._breakers.get(playbook)
        if b is None or b.state == CLOSED:
            return False
        self._breakers[playbook] = Breaker()
        self._save(playbook, self._breakers[playbook])
        return True

    def _save(self, playbook: str, b: Breaker) -> None:
        body = {"state": b.state, "failures": b.failures, "opened_ts": b.opened_ts}
        self._store.set_breaker(playbook, body)

    # -- capacity -------------------------------------------------------------------
    def capacity(self, frame: FleetFrame, appliance: str, reserved: Collection[str]) -> Verdict:
        """Whether taking `appliance` out of service keeps its site and the fleet in bounds.

        Unavailable = not serving in the live frame (draining, drained, maintenance,
        unreachable or rebooting) or reserved by a running execution (its action was
        sent; the next frames will show it). An appliance already unavailable removes
        nothing, so acting on it is always allowed.
        """
        rows = frame.inventory.index()
        row = rows.get(appliance)
        if row is None:
            return Verdict("capacity", False, f"appliance {appliance} is not in the inventory")
        serving = (frame.state == ApplianceState.SERVING) & (frame.failure == PollFailure.OK)
        for other in reserved:
            if (r := rows.get(other)) is not None:
                serving[r] = False
        if not serving[row]:
            return Verdict("capacity", True, "already out of service")
        site = frame.site_index == frame.site_index[row]
        site_name = frame.sites[int(frame.site_index[row])]
        return capacity_check(
            self.config.capacity,
            site=site_name,
            site_n=int(site.sum()),
            site_serving_after=int((serving & site).sum()) - 1,
            fleet_n=frame.n,
            fleet_unavailable_after=frame.n - int(np.count_nonzero(serving)) + 1,
        )


def capacity_check(
    cap: CapacityConfig,
    *,
    site: str,
    site_n: int,
    site_serving_after: int,
    fleet_n: int,
    fleet_unavailable_after: int,
) -> Verdict:
    """The capacity rails, on counts after the action (pure, shared with `playbook test`)."""
    unavailable = site_n - site_serving_after
    if unavailable > cap.max_unavailable_fraction * site_n + 1e-9:
        return Verdict(
            "capacity",
            False,
            f"site {site} would have {unavailable} of {site_n} appliances "
            f"unavailable (max {cap.max_unavailable_fraction:g})",
        )
    if site_serving_after < cap.min_serving:
        return Verdict(
            "capacity",
            False,
            f"site {site} would have {site_serving_after} serving (floor {cap.min_serving})",
        )
    if fleet_unavailable_after > cap.fleet_max_unavailable_fraction * fleet_n + 1e-9:
        return Verdict(
            "capacity",
            False,
            f"fleet would have {fleet_unavailable_after} of {fleet_n} appliances unavailable "
            f"(max {cap.fleet_max_unavailable_fraction:g})",
        )
    return Verdict("capacity", True, f"site {site} keeps {site_serving_after} serving")
