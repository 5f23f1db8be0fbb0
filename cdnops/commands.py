"""Write requests an operator sends (HTTP API and MQTT command topic), validated the same way.

Each request is a pydantic model with `extra="forbid"`; `parse` turns any input into
one of them or raises `CommandError` with every problem as `field: message`, in words
an operator understands. The MQTT side takes a `command` envelope (`parse_command`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

# A silence may last 30 days at most: longer ones belong in the config file, reviewed.
MAX_SILENCE_S = 30 * 86400.0
KINDS = ("metric", "unreachable", "service_failed", "alert")

# No control characters: these end up in timelines and log lines.
Actor = Annotated[
    str,
    Field(
        default="",
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="who asks (a name or a login); recorded in the timeline and the audit",
    ),
]
Matcher = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Comment = Annotated[str, Field(max_length=1000)]


class _Request(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, str_strip_whitespace=True
    )


class SilenceRequest(_Request):
    """Create a silence: every matcher given must match; at least one must be given.

    Give `ends_at` or `duration_s` (not both); `starts_at` defaults to now.
    """

    appliance: Matcher | None = Field(default=None, description="appliance id, wildcards allowed")
    site: Matcher | None = Field(default=None, description="site, wildcards allowed")
    metric: Matcher | None = Field(default=None, description="metric or family, wildcards allowed")
    kind: Literal["metric", "unreachable", "service_failed", "alert"] | None = None
    labels: dict[Matcher, Matcher] = Field(default_factory=dict, max_length=20)
    starts_at: AwareDatetime | None = Field(default=None, description="RFC 3339 with a zone")
    ends_at: AwareDatetime | None = Field(default=None, description="RFC 3339 with a zone")
    duration_s: float | None = Field(default=None, gt=0, le=MAX_SILENCE_S, allow_inf_nan=False)
    comment: Comment = Field(min_length=1, description="why, and who to ask")
    by: Actor

    @model_validator(mode="after")
    def _check(self) -> SilenceRequest:
        if not (self.appliance or self.site or self.metric or self.kind or self.labels):
            raise ValueError(
                "give at least one matcher (appliance, site, metric, kind or labels): "
                "a silence of everything would hide every incident"
            )
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at or duration_s")
        if self.ends_at is not None:
            starts = self.starts_at
            if starts is not None and self.ends_at <= starts:
                raise ValueError("ends_at must be after starts_at")
            if starts is not None and (self.ends_at - starts).total_seconds() > MAX_SILENCE_S:
                raise ValueError("a silence may last 30 days at most (2592000 s)")
        return self

    def window(self, now: float) -> tuple[float, float]:
        """(starts_ts, ends_ts) with `now` for a missing start; raises CommandError when
        the silence would be over already or last too long."""
        starts = self.starts_at.timestamp() if self.starts_at is not None else now
        ends = self.ends_at.timestamp() if self.ends_at is not None else None
        if ends is None:
            ends = max(starts, now) + (self.duration_s or 0.0)
        if ends <= now:
            raise CommandError([f"ends_at: {_iso(ends)} is in the past"])
        if ends - max(starts, now) > MAX_SILENCE_S:
            raise CommandError(["ends_at: a silence may last 30 days at most (2592000 s)"])
        return starts, ends


class AckRequest(_Request):
    """Acknowledge an incident: someone is on it."""

    by: Actor
    comment: Comment = ""


class RunPlaybookRequest(_Request):
    """Run a playbook now on one subject (an appliance id, a site, or `fleet`)."""

    subject: Matcher = Field(description="the appliance id, site or `fleet` to act on")
    by: Actor
    reason: Comment = ""


class BreakerResetRequest(_Request):
    """Close a playbook's circuit breaker (the body may be empty)."""

    by: Actor


class SilenceCommand(SilenceRequest):
    """`silence` on the MQTT command topic."""

    command: Literal["silence"]


class AckCommand(AckRequest):
    """`ack` on the MQTT command topic."""

    command: Literal["ack"]
    incident_id: Matcher


class RunCommand(RunPlaybookRequest):
    """`run` (manual trigger) on the MQTT command topic."""

    command: Literal["run"]
    playbook: Matcher


Command = Annotated[SilenceCommand | AckCommand | RunCommand, Field(discriminator="command")]
_COMMAND: TypeAdapter[SilenceCommand | AckCommand | RunCommand] = TypeAdapter(Command)

# Every request model, for the OpenAPI description.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    SilenceRequest,
    AckRequest,
    RunPlaybookRequest,
    BreakerResetRequest,
)


class CommandError(ValueError):
    """A request that does not validate; `problems` holds one `field: message` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate `data` (decoded JSON) as `model`; raises CommandError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CommandError([f"the body must be a JSON object, got {_json_type(data)}"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CommandError(problems(exc)) from None


def parse_command(data: Any) -> SilenceCommand | AckCommand | RunCommand:
    """Validate an MQTT command (`{"command": "silence" | "ack" | "run", ...}`)."""
    if not isinstance(data, dict):
        raise CommandError([f"a command must be a JSON object, got {_json_type(data)}"])
    if data.get("command") not in ("silence", "ack", "run"):
        raise CommandError(['command: must be one of "silence", "ack", "run"'])
    try:
        return _COMMAND.validate_python(data)
    except ValidationError as exc:
        # the discriminator's own name leads every loc: drop it
        raise CommandError(problems(exc, skip=1)) from None


def problems(exc: ValidationError, *, skip: int = 0) -> list[str]:
    """One `field: message` per error (`body:` for the whole request); never the input."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"][skip:]) or "body"
        kind = err["type"]
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required"
        else:
            message = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {message}")
    return out


def _json_type(data: Any) -> str:
    if isinstance(data, list):
        return "an array"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, bool):
        return "a boolean"
    if isinstance(data, int | float):
        return "a number"
    return type(data).__name__


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
