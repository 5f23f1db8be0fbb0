"""What the poller tells operators: transition logs, tick summaries, counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from cdnops.model import FleetFrame, PollFailure
from cdnops.poll.targets import Target

log = logging.getLogger("cdnops.poll")

FAILURES = tuple(PollFailure)


@dataclass(frozen=True)
class PollStats:
    """Counts since start."""

    polls: dict[str, int] = field(default_factory=dict)  # by reason, `ok` included
    ticks: int = 0
    ticks_skipped: int = 0  # boundaries missed because the loop was late
    frames_dropped: int = 0  # oldest frames dropped because the queue was full
    skipped_in_flight: int = 0  # a phase came while the previous poll was still running
    counter_resets: int = 0
    connections_opened: int = 0
    connections_reused: int = 0
    connections_retried: int = 0  # a kept-alive connection was found closed: sent again
    confirm_retries: int = 0  # re-polls that confirm a failed poll before the next interval


def log_transition(target: Target, failure: int, detail: str) -> None:
    """Log the first failure of a streak (with its reason) and the recovery, once each."""
    a = target.appliance
    if failure == 0:
        if target.last > 0:
            log.info("poll recovered appliance=%s site=%s url=%s", a.id, a.site, a.url)
    elif target.last <= 0:
        log.warning(
            "poll failed reason=%s appliance=%s site=%s url=%s detail=%s",
            FAILURES[failure].reason,
            a.id,
            a.site,
            a.url,
            detail,
        )


def log_tick(frame: FleetFrame, lag_s: float, resets: int) -> None:
    """One summary line per tick: ok and failed counts by reason, resets, lag."""
    if not log.isEnabledFor(logging.INFO):
        return
    counts = np.bincount(frame.failure.astype(np.intp), minlength=len(FAILURES))
    failed = " ".join(f"{f.reason}={counts[f]}" for f in FAILURES[1:] if counts[f])
    log.info(
        "tick seq=%d ok=%d failed=%d%s counter_resets=%d lag_s=%.3f",
        frame.seq,
        counts[0],
        frame.n - counts[0],
        f" {failed}" if failed else "",
        resets,
        lag_s,
    )
