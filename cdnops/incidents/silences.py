"""Silences: matchers with a start and an end; a silenced incident is kept but triggers nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from cdnops.config.incidents import SilenceConfig
from cdnops.incidents.model import Incident, Scope


@dataclass(frozen=True, slots=True)
class Silence:
    """Every matcher given must match; `None` (or no labels) matches anything."""

    id: str
    starts_ts: float
    ends_ts: float
    comment: str
    appliance: str | None = None
    site: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    metric: str | None = None
    kind: str | None = None
    created_by: str = ""  # who made it at run time (an operator, a playbook); empty in config

    @classmethod
    def from_config(cls, cfg: SilenceConfig, position: int) -> Silence:
        """A silence from the config; unnamed ones get `config-<position>`."""
        return cls(
            id=cfg.id or f"config-{position}",
            starts_ts=cfg.starts_at.timestamp(),
            ends_ts=cfg.ends_at.timestamp(),
            comment=cfg.comment,
            appliance=cfg.appliance,
            site=cfg.site,
            labels=dict(cfg.labels),
            metric=cfg.metric,
            kind=cfg.kind,
        )

    def to_json(self) -> dict[str, Any]:
        """The silence as JSON-ready data (how run-time silences are stored and served)."""
        return {
            "v": JSON_VERSION,
            "id": self.id,
            "starts_ts": self.starts_ts,
            "ends_ts": self.ends_ts,
            "comment": self.comment,
            "appliance": self.appliance,
            "site": self.site,
            "labels": dict(self.labels),
            "metric": self.metric,
            "kind": self.kind,
            "created_by": self.created_by,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Silence:
        """The inverse of `to_json`; raises ValueError naming what is wrong."""
        try:
            return cls(
                id=str(d["id"]),
                starts_ts=float(d["starts_ts"]),
                ends_ts=float(d["ends_ts"]),
                comment=str(d["comment"]),
                appliance=_opt_str(d.get("appliance")),
                site=_opt_str(d.get("site")),
                labels={str(k): str(v) for k, v in (d.get("labels") or {}).items()},
                metric=_opt_str(d.get("metric")),
                kind=_opt_str(d.get("kind")),
                created_by=str(d.get("created_by") or ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"unreadable silence: {exc!r}") from None

    def in_effect(self, now: float) -> bool:
        """From `starts_ts` (included) to `ends_ts` (excluded)."""
        return self.starts_ts <= now < self.ends_ts

    def matches(self, inc: Incident) -> bool:
        """Whether the matchers select `inc` (regardless of time)."""
        if self.kind is not None and self.kind != inc.kind:
            return False
        if self.metric is not None and not (
            fnmatchcase(inc.metric, self.metric) or fnmatchcase(inc.family, self.metric)
        ):
            return False
        if self.site is not None and not fnmatchcase(inc.site, self.site):
            return False
        if self.appliance is not None and (
            inc.scope is not Scope.APPLIANCE or not fnmatchcase(inc.subject, self.appliance)
        ):
            return False
        return all(inc.labels.get(k) == v for k, v in self.labels.items())


JSON_VERSION = 1


def _opt_str(x: Any) -> str | None:
    return None if x is None else str(x)


class Silences:
    """The set of silences; later the API adds and expires them at run time."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._by_id: dict[str, Silence] = {}
        for s in silences:
            self.add(s)

    @classmethod
    def from_config(cls, configs: Iterable[SilenceConfig]) -> Silences:
        """The silences of the `incidents.silences` config list."""
        return cls(Silence.from_config(c, i) for i, c in enumerate(configs))

    def replace_config(self, old: Sequence[SilenceConfig], new: Sequence[SilenceConfig]) -> None:
        """Swap the silences of a reloaded config; those added at run time stay."""
        for position, cfg in enumerate(old):
            self.remove(Silence.from_config(cfg, position).id)
        for position, cfg in enumerate(new):
            self.add(Silence.from_config(cfg, position))

    def add(self, silence: Silence) -> None:
        """Add or replace (by id) a silence."""
        self._by_id[silence.id] = silence

    def remove(self, silence_id: str) -> bool:
        """Remove a silence; False if there was none with that id."""
        return self._by_id.pop(silence_id, None) is not None

    def get(self, silence_id: str) -> Silence | None:
        """The silence with that id, if any."""
        return self._by_id.get(silence_id)

    def all(self) -> list[Silence]:
        """Every silence, expired ones included until pruned."""
        return list(self._by_id.values())

    def prune(self, now: float) -> list[Silence]:
        """Drop expired silences and return them."""
        gone = [s for s in self._by_id.values() if s.ends_ts <= now]
        for s in gone:
            del self._by_id[s.id]
        return gone

    def match(self, inc: Incident, now: float) -> Silence | None:
        """The first silence in effect at `now` that matches `inc`."""
        for s in self._by_id.values():
            if s.in_effect(now) and s.matches(inc):
                return s
        return None

    def changes(
        self, incidents: Iterable[Incident], now: float
    ) -> list[tuple[Incident, Silence | None]]:
        """Set `silenced_by` on every incident; return those whose silence changed."""
        out: list[tuple[Incident, Silence | None]] = []
        for inc in incidents:
            match = self.match(inc, now) if self._by_id else None
            sid = match.id if match is not None else None
            if sid != inc.silenced_by:
                inc.silenced_by = sid
                out.append((inc, match))
        return out

    def __len__(self) -> int:
        return len(self._by_id)
