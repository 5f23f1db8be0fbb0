"""Webhook payload validation: what version 4 looks like, and what operators read when not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from intake_helpers import alert, notification

from cdnops.intake.webhook import IntakeError, fingerprint_of, parse_notification


def test_a_version_4_notification_becomes_typed_alerts() -> None:
    body = notification(
        alert(appliance="sea01-a01", severity="critical"),
        alert("CacheCold", "resolved", fingerprint="fp-2"),
        truncated=3,
    )
    note = parse_notification(body, max_alerts=10)
    assert (note.receiver, note.truncated) == ("cdnops", 3)
    first, second = note.alerts
    assert first.fingerprint == "fp-1"
    assert first.firing
    assert not second.firing
    assert first.labels == {
        "alertname": "EdgeDown",
        "appliance": "sea01-a01",
        "severity": "critical",
    }
    assert first.annotations == {"summary": "EdgeDown fired"}
    # nanoseconds are cut to microseconds; Go's zero time means "not set"
    assert first.starts_ts == datetime(2025, 11, 30, 23, 58, 0, 123456, tzinfo=UTC).timestamp()
    assert first.ends_ts is None
    assert second.ends_ts == datetime(2025, 12, 1, 0, 5, tzinfo=UTC).timestamp()


def test_unknown_fields_are_ignored() -> None:
    body = notification(alert() | {"silenceURL": "x", "values": {"B": 1.0}})
    body["orgId"] = 1
    assert len(parse_notification(body, max_alerts=10).alerts) == 1


def test_an_alert_without_fingerprint_gets_one_from_its_labels() -> None:
    a = alert(fingerprint=None, appliance="sea01-a01")
    b = alert(fingerprint=None, appliance="sea01-a01")
    c = alert(fingerprint=None, appliance="sea01-a02")
    fps = [x.fingerprint for x in parse_notification(notification(a, b, c), max_alerts=10).alerts]
    assert fps[0] == fps[1] != fps[2]
    assert fps[0] == fingerprint_of({"appliance": "sea01-a01", "alertname": "EdgeDown"})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "expected an Alertmanager webhook (a JSON object), got list"),
        (
            {"version": "3", "alerts": []},
            "unsupported webhook version '3': this intake reads version 4 "
            "(Alertmanager 0.16 and later)",
        ),
        (
            {"alerts": []},
            "not an Alertmanager webhook (version 4): version: Field required",
        ),
        (
            notification(alert(status="pending")),
            "not an Alertmanager webhook (version 4): alerts[0].status: "
            "Input should be 'firing' or 'resolved'",
        ),
        (
            notification(alert(), alert() | {"labels": {"alertname": 5}}),
            "not an Alertmanager webhook (version 4): alerts[1].labels.alertname: "
            "Input should be a valid string",
        ),
        (
            notification(alert() | {"startsAt": "2025-12-01T00:00:00"}),
            "not an Alertmanager webhook (version 4): alerts[0].startsAt: "
            "Input should have timezone info",
        ),
        (
            {"version": "4"},
            "not an Alertmanager webhook (version 4): alerts: Field required",
        ),
    ],
)
def test_a_payload_that_is_not_webhook_v4_is_refused_with_the_reason(
    payload: object, message: str
) -> None:
    with pytest.raises(IntakeError) as exc:
        parse_notification(payload, max_alerts=10)
    assert str(exc.value) == message


def test_many_problems_are_listed_up_to_a_few() -> None:
    bad = [alert() | {"status": "?"} for _ in range(7)]
    with pytest.raises(IntakeError, match=r"alerts\[4\]\.status: .*; and 2 more$"):
        parse_notification(notification(*bad), max_alerts=10)


def test_more_alerts_than_accepted_is_refused_before_validation() -> None:
    with pytest.raises(IntakeError) as exc:
        parse_notification(notification(*[alert()] * 3), max_alerts=2)
    assert str(exc.value) == (
        "3 alerts in one request, more than the 2 accepted (api.alertmanager.max_alerts); "
        "set max_alerts in Alertmanager's webhook_configs"
    )


def test_intake_error_is_a_value_error() -> None:
    # the API answers ValueError with a 4xx: Alertmanager does not retry what it cannot fix
    assert issubclass(IntakeError, ValueError)
