"""Scheduled playbooks: standard cron lines (in UTC) run by APScheduler 3's asyncio scheduler."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:  # the loader checks cron lines with this module: no import at run time
    from cdnops.remediate.loader import CompiledPlaybook

UTC = dt.UTC
# a firing the loop could not start within this long (a stalled loop, a suspended host)
# is skipped rather than run late; several missed firings run once (coalesced)
MISFIRE_GRACE_S = 60
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_TOKEN = re.compile(r"(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?")

Fire = Callable[[str], Awaitable[None]]


def parse_cron(line: str) -> CronTrigger:
    """A trigger from a standard 5-field crontab line (minute hour day month weekday), UTC.

    The weekday field follows classic cron (0 or 7 = Sunday, names sun..sat), not
    APScheduler 3's own numbering where 0 is Monday.

    Raises:
        ValueError: with a message an operator understands.
    """
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(
            f'cron line "{line}" has {len(fields)} fields; '
            "expected 5: minute hour day-of-month month day-of-week"
        )
    try:
        fields[4] = _weekdays(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)
    except ValueError as exc:
        raise ValueError(f'cron line "{line}": {exc}') from exc


def _weekdays(field: str) -> str:
    """Classic cron weekdays -> an explicit list of day names APScheduler reads the same way."""
    if field == "*":
        return field
    days: set[int] = set()
    for token in field.lower().split(","):
        m = _DAY_TOKEN.fullmatch(token)
        if m is None:
            raise ValueError(f'day-of-week "{token}" is not a day (0-7 or sun..sat), range or step')
        base, step = m["base"], int(m["step"] or 1)
        if step < 1:
            raise ValueError(f'day-of-week "{token}": the step must be at least 1')
        if base == "*":
            first, last = 0, 6
        else:
            ends = base.split("-")
            first, last = _day(ends[0]), _day(ends[-1])
            if len(ends) == 2 and last == 0 and first > 0:
                last = 7  # `sat-sun` and `5-0` end on the Sunday after
            if last < first:
                raise ValueError(f'day-of-week range "{base}" runs backwards; write it as two')
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def _day(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text in _DAYS:
        return _DAYS.index(text)
    raise ValueError(f'day-of-week "{text}" is not a day (0-7 or sun..sat)')


def next_fire(line: str, after: dt.datetime) -> dt.datetime | None:
    """When a cron line fires next at or after `after` (None: never again)."""
    fire: dt.datetime | None = parse_cron(line).get_next_fire_time(None, after)
    return fire


class PlaybookScheduler:
    """One APScheduler job per enabled scheduled playbook; each firing awaits `fire(name)`.

    `start` needs a running event loop (the jobs run on it, never in a thread); `sync`
    replaces the jobs after a playbook reload; `stop` drops every pending firing.
    """

    def __init__(self, fire: Fire) -> None:
        self._fire = fire
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    @property
    def running(self) -> bool:
        """Whether the scheduler runs (started and not stopped)."""
        return bool(self._scheduler.running)

    def start(self, playbooks: Iterable[CompiledPlaybook]) -> None:
        """Register the jobs and start firing them."""
        self.sync(playbooks)
        self._scheduler.start()

    def stop(self) -> None:
        """Stop firing (an execution a firing already started keeps running)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def sync(self, playbooks: Iterable[CompiledPlaybook]) -> None:
        """Make the jobs match `playbooks`: one per enabled playbook with a schedule."""
        self._scheduler.remove_all_jobs()
        for pb in playbooks:
            line = pb.playbook.trigger.schedule
            if line is None or not pb.playbook.enabled:
                continue
            self._scheduler.add_job(
                self._fire,
                parse_cron(line),
                args=(pb.name,),
                id=pb.name,
                name=f"cdnops.schedule[{pb.name}]",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=MISFIRE_GRACE_S,
            )

    def fire_now(self, name: str) -> None:
        """Bring a playbook's next firing forward to now (the one after follows the cron
        line again). Raises KeyError when no job has that name."""
        job = self._scheduler.get_job(name)
        if job is None:
            raise KeyError(name)
        job.modify(next_run_time=dt.datetime.now(UTC))
        self._scheduler.wakeup()

    def jobs(self) -> dict[str, dt.datetime | None]:
        """Playbook name -> its next firing (None before `start`, or when paused)."""
        out: dict[str, dt.datetime | None] = {}
        for job in self._scheduler.get_jobs():
            out[job.id] = getattr(job, "next_run_time", None)
        return out
