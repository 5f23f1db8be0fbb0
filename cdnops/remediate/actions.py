"""The action registry: every action a step may name, with its typed parameters."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(_Params):
    """No parameters."""


class RestartServiceParams(_Params):
    """Which service to restart (templated)."""

    service: str = Field(min_length=1, description="nginx, cache or bgp, or a template")


class WaitParams(_Params):
    """A pause."""

    seconds: float = Field(gt=0, le=3600)


class VerifyParams(_Params):
    """A condition over the live state, re-evaluated on every poll until it holds long enough."""

    condition: str = Field(min_length=1, description="an expression, e.g. appliance.reachable")
    within_s: float = Field(default=120.0, gt=0, description="give up after this long")
    hold_s: float = Field(default=0.0, ge=0, description="it must keep holding this long")
    on_ok: Literal["continue", "stop"] = "continue"
    on_fail: Literal["fail", "continue"] = "fail"


class NotifyParams(_Params):
    """A message for the operators (templated)."""

    message: str = Field(min_length=1)


class EscalateParams(_Params):
    """Hand the incident to humans, with its triage attached."""

    reason: str = Field(min_length=1)


class SilenceParams(_Params):
    """Silence the incident's subject for a while."""

    duration_s: float = Field(gt=0, le=7 * 86400)
    comment: str = Field(min_length=1)


class HttpParams(_Params):
    """A request to an allow-listed URL (templated URL and body)."""

    url: str = Field(min_length=1)
    method: Literal["GET", "POST", "PUT"] = "POST"
    body: dict[str, str] = Field(default_factory=dict)


class Kind(enum.StrEnum):
    """Where an action goes."""

    APPLIANCE = "appliance"  # a POST to the appliance contract
    BUILTIN = "builtin"  # inside the daemon


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One registered action."""

    name: str
    params: type[_Params]
    kind: Kind
    removes_capacity: bool = False
    stops: bool = False  # ends the execution unconditionally
    side_effect: bool = True  # what dry_run does not do
    help: str = ""


_SPECS = (
    ActionSpec("restart_service", RestartServiceParams, Kind.APPLIANCE, help="restart a service"),
    ActionSpec("purge_cache", NoParams, Kind.APPLIANCE, help="drop the cache"),
    ActionSpec("drain", NoParams, Kind.APPLIANCE, removes_capacity=True, help="steer traffic away"),
    ActionSpec("undrain", NoParams, Kind.APPLIANCE, help="back to serving"),
    ActionSpec("reboot", NoParams, Kind.APPLIANCE, removes_capacity=True,
               help="reboot the appliance"),
    ActionSpec("collect_diagnostics", NoParams, Kind.APPLIANCE, help="gather logs"),
    ActionSpec("wait", WaitParams, Kind.BUILTIN, side_effect=False, help="pause"),
    ActionSpec("verify", VerifyParams, Kind.BUILTIN, side_effect=False,
               help="a condition re-polled until it holds"),
    ActionSpec("wait_until", VerifyParams, Kind.BUILTIN, side_effect=False,
               help="same as verify"),
    ActionSpec("notify", NotifyParams, Kind.BUILTIN, help="an event for operators"),
    ActionSpec("escalate", EscalateParams, Kind.BUILTIN, help="hand the incident to humans"),
    ActionSpec("silence", SilenceParams, Kind.BUILTIN, help="silence the incident's subject"),
    ActionSpec("http", HttpParams, Kind.BUILTIN, help="call an allow-listed URL"),
    ActionSpec("stop", NoParams, Kind.BUILTIN, stops=True, side_effect=False,
               help="end the execution"),
)  # fmt: skip

REGISTRY: dict[str, ActionSpec] = {s.name: s for s in _SPECS}
APPLIANCE_ACTIONS = frozenset(s.name for s in _SPECS if s.kind is Kind.APPLIANCE)
