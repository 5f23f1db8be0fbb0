"""`cdnops_remediation_breaker_state`: one series per playbook and state, 1 for the current one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from cdnops.remediate.audit import RemediationBus


def _states(registry: CollectorRegistry, playbook: str) -> dict[str, float | None]:
    return {
        s: registry.get_sample_value(
            "cdnops_remediation_breaker_state", {"playbook": playbook, "state": s}
        )
        for s in ("closed", "open", "half_open")
    }


def test_states_follow_changes_and_unloaded_playbooks_disappear() -> None:
    registry = CollectorRegistry()
    bus = RemediationBus(registry)
    bus.set_breakers({"restart": "closed", "reboot": "open"})
    assert _states(registry, "restart") == {"closed": 1.0, "open": 0.0, "half_open": 0.0}
    assert _states(registry, "reboot") == {"closed": 0.0, "open": 1.0, "half_open": 0.0}
    bus.set_breakers({"restart": "half_open"})
    assert _states(registry, "restart") == {"closed": 0.0, "open": 0.0, "half_open": 1.0}
    assert _states(registry, "reboot") == {"closed": None, "open": None, "half_open": None}
