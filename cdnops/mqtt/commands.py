"""The command topic: `silence`, `ack` and `run` validated as the API does, each answered."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cdnops.commands import AckCommand, CommandError, RunCommand, SilenceCommand, parse_command
from cdnops.control import (
    ConflictError,
    Control,
    ControlError,
    InvalidError,
    NotFoundError,
    UnavailableError,
)
from cdnops.mqtt.payloads import VERSION
from cdnops.mqtt.topics import COMMAND_VERBS, Topics

log = logging.getLogger("cdnops.mqtt")

MAX_PAYLOAD_BYTES = 64 * 1024
REPLAY_WINDOW_S = 600.0  # a command re-delivered with the same correlation is not run twice
REPLAY_MAX = 1000
SOURCE = "mqtt"

_ERROR_KINDS: tuple[tuple[type[ControlError], str], ...] = (
    (NotFoundError, "not_found"),
    (ConflictError, "conflict"),
    (InvalidError, "invalid"),
    (UnavailableError, "unavailable"),
)


class Rejected(Exception):
    """A command that is not carried out; the answer says why."""

    def __init__(self, kind: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.problems = problems or []


class CommandHandler:
    """Answers every message on `<prefix>/commands/<verb>`; never raises on bad input.

    The answer goes to the request's MQTT 5 response topic, or `<prefix>/commands/<verb>/result`,
    as `{"v", "ok", "command", "result" | "error", "correlation"}`. A command carrying
    correlation data is run once: a re-delivery (QoS 1 is at least once) within
    `REPLAY_WINDOW_S` gets the first answer again.
    """

    def __init__(
        self, control: Control, topics: Topics, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.control = control
        self.topics = topics
        self._clock = clock
        self._answers: OrderedDict[tuple[str, bytes], tuple[float, bytes]] = OrderedDict()

    async def __call__(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Publisher hook: handle one message from the command subscription."""
        topic = str(message.topic)
        verb = self.topics.verb_of(topic)
        if verb is None:
            return
        correlation = _prop(message, "CorrelationData")
        reply_to = self._reply_topic(verb, _prop(message, "ResponseTopic"))
        payload = message.payload if isinstance(message.payload, bytes) else b""
        answer = self.answer(verb, payload, correlation)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho has no types
        if isinstance(correlation, bytes):
            props.CorrelationData = correlation
        await client.publish(reply_to, answer, qos=1, properties=props)

    def answer(self, verb: str, payload: bytes, correlation: object = None) -> bytes:
        """The JSON answer to one command (running it unless it is a replay)."""
        key = (verb, correlation) if isinstance(correlation, bytes) and correlation else None
        now = self._clock()
        self._expire(now)
        if key is not None and key in self._answers:
            log.info("mqtt command %s re-delivered: answered again, not run again", verb)
            return self._answers[key][1]
        corr, data = _correlation(correlation), None
        try:
            data = self._decode(verb, payload)
            if isinstance(data, dict) and corr is None:
                corr = _str_or_none(data.get("correlation"))
            result = self._run(verb, data)
            out = {"v": VERSION, "ok": True, "command": verb, "result": result}
        except Rejected as exc:
            log.warning("mqtt command %s rejected (%s): %s", verb, exc.kind, exc)
            error: dict[str, Any] = {"kind": exc.kind, "message": str(exc)}
            if exc.problems:
                error["problems"] = exc.problems
            out = {"v": VERSION, "ok": False, "command": verb, "error": error}
        out["correlation"] = corr
        answer = orjson.dumps(out)
        if key is not None:
            self._answers[key] = (now, answer)
        return answer

    def _decode(self, verb: str, payload: bytes) -> Any:
        if verb not in COMMAND_VERBS:
            raise Rejected(
                "invalid", f'unknown command "{verb}" (known: {", ".join(COMMAND_VERBS)})'
            )
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise Rejected("invalid", f"the payload is over {MAX_PAYLOAD_BYTES} bytes")
        try:
            return orjson.loads(payload) if payload.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise Rejected("invalid", f"the payload is not JSON: {exc}") from None

    def _run(self, verb: str, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "correlation"}
            if data.setdefault("command", verb) != verb:
                raise Rejected(
                    "invalid", f'command: "{data["command"]}" sent on the "{verb}" topic'
                )
        try:
            cmd = parse_command(data)
        except CommandError as exc:
            raise Rejected("invalid", "the command is not valid", exc.problems) from None
        try:
            return self._execute(cmd)
        except ControlError as exc:
            kind = next((k for t, k in _ERROR_KINDS if isinstance(exc, t)), "failed")
            problems = exc.problems if isinstance(exc, InvalidError) else None
            raise Rejected(kind, str(exc), problems) from None

    def _execute(self, cmd: SilenceCommand | AckCommand | RunCommand) -> dict[str, Any]:
        by = cmd.by or SOURCE
        if isinstance(cmd, SilenceCommand):
            silence = self.control.create_silence(cmd, source=SOURCE)
            log.info("mqtt command silence by %s: %s", by, silence.id)
            return {"silence": silence.to_json()}
        if isinstance(cmd, AckCommand):
            inc = self.control.acknowledge(cmd.incident_id, by, cmd.comment)
            log.info("mqtt command ack by %s: %s", by, inc.id)
            return {"incident_id": inc.id, "status": str(inc.status), "by": by}
        execution_id = self.control.run_playbook(cmd.playbook, cmd.subject, by, cmd.reason)
        log.info("mqtt command run by %s: %s on %s", by, cmd.playbook, cmd.subject)
        return {"execution_id": execution_id, "playbook": cmd.playbook, "subject": cmd.subject}

    def _reply_topic(self, verb: str, requested: object) -> str:
        default = self.topics.result(verb)
        if not isinstance(requested, str) or not requested:
            return default
        # a requester must not make the daemon write into its own event or status topics
        own = requested == self.topics.prefix or requested.startswith(self.topics.prefix + "/")
        allowed_own = requested.startswith(self.topics.prefix + "/commands/")
        if (
            any(c in requested for c in "+#\x00")
            or requested.startswith("$")
            or (own and not allowed_own)
        ):
            log.warning("mqtt command %s: response topic %r refused; answering on %s",
                        verb, requested, default)  # fmt: skip
            return default
        return requested

    def _expire(self, now: float) -> None:
        while self._answers:
            key, (ts, _) = next(iter(self._answers.items()))
            if now - ts < REPLAY_WINDOW_S and len(self._answers) <= REPLAY_MAX:
                break
            del self._answers[key]


def _prop(message: aiomqtt.Message, name: str) -> object:
    return getattr(message.properties, name, None) if message.properties is not None else None


def _correlation(value: object) -> str | None:
    if not isinstance(value, bytes):
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


def _str_or_none(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None
