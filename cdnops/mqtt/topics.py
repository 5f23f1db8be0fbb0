"""The topic tree: every topic cdnops publishes to or listens on, under one prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cdnops.incidents.model import Incident, Scope

SITE_LEVEL = "_site"  # the last level of a site incident's topic
FLEET_LEVEL = "_fleet"  # both levels of a fleet incident's topic
COMMAND_VERBS = ("silence", "ack", "run")

# Names in the inventory and playbooks are already topic-safe ([A-Za-z0-9_.-]); this keeps
# a topic well formed whatever reaches it.
_UNSAFE = re.compile(r"[/#+\x00]")


def level(name: str) -> str:
    """`name` as one topic level: separators and wildcards replaced, never empty."""
    return _UNSAFE.sub("_", name) or "_"


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics under `prefix` (`cdnops/<instance>` unless configured)."""

    prefix: str

    @property
    def status(self) -> str:
        """Retained `online`/`offline` state of the daemon; the last will goes here."""
        return f"{self.prefix}/status"

    def incident(self, inc: Incident) -> str:
        """`incidents/<site>/<appliance>`, `incidents/<site>/_site`, `incidents/_fleet/_fleet`."""
        if inc.key.scope is Scope.FLEET:
            return f"{self.prefix}/incidents/{FLEET_LEVEL}/{FLEET_LEVEL}"
        if inc.key.scope is Scope.SITE:
            return f"{self.prefix}/incidents/{level(inc.site)}/{SITE_LEVEL}"
        return f"{self.prefix}/incidents/{level(inc.site)}/{level(inc.key.subject)}"

    def execution(self, playbook: str, subject: str) -> str:
        """`executions/<playbook>/<subject>`: an execution's start and end."""
        return f"{self.prefix}/executions/{level(playbook)}/{level(subject)}"

    def audit(self, playbook: str) -> str:
        """`audit/<playbook>`: every remediation decision."""
        return f"{self.prefix}/audit/{level(playbook)}"

    @property
    def commands(self) -> str:
        """The subscription that takes every command verb."""
        return f"{self.prefix}/commands/+"

    def command(self, verb: str) -> str:
        """Where a command is sent."""
        return f"{self.prefix}/commands/{verb}"

    def result(self, verb: str) -> str:
        """Where a command's answer goes when the request names no response topic."""
        return f"{self.prefix}/commands/{verb}/result"

    def verb_of(self, topic: str) -> str | None:
        """The verb of a command topic, or None if `topic` is not one."""
        head = f"{self.prefix}/commands/"
        if not topic.startswith(head):
            return None
        verb = topic[len(head) :]
        return verb if verb and "/" not in verb else None
