"""Alert labels -> incident key, site, severity and labels, under the intake's config."""

from __future__ import annotations

import pytest
from intake_helpers import alert, notification
from pydantic import ValidationError

from cdnops.config.intake import AlertmanagerConfig
from cdnops.incidents.model import IncidentKind, Key, Scope, Severity
from cdnops.intake.mapping import Skip, Target, host_of, selected, target_of
from cdnops.intake.webhook import Alert, parse_notification

SITES = {"sea01-a01": "sea01"}
DEFAULT = AlertmanagerConfig()
RULE = "1 to 64 characters from A-Z a-z 0-9 _ . -"  # the inventory's


def one(name: str = "EdgeDown", **labels: str) -> Alert:
    (a,) = parse_notification(notification(alert(name, **labels)), max_alerts=1).alerts
    return a


def target(a: Alert, config: AlertmanagerConfig = DEFAULT) -> Target:
    return target_of(config, a, SITES.get)


def test_the_appliance_label_makes_an_appliance_incident() -> None:
    t = target(one(appliance="sea01-a01", site="sea01", severity="critical", team="cdn"))
    assert t.key == Key(Scope.APPLIANCE, "sea01-a01", IncidentKind.ALERT, "EdgeDown")
    assert (t.site, t.severity) == ("sea01", Severity.CRITICAL)
    assert t.labels == {
        "alertname": "EdgeDown", "appliance": "sea01-a01", "site": "sea01",
        "severity": "critical", "team": "cdn",
    }  # fmt: skip
    assert t.summary == "EdgeDown fired"


def test_an_appliance_without_site_label_takes_its_inventory_site() -> None:
    assert target(one(appliance="sea01-a01")).site == "sea01"
    assert target(one(appliance="lab-box")).site == ""  # accepted as the label says


def test_instance_names_the_appliance_without_its_port() -> None:
    t = target(one(instance="sea01-a01:9100"))
    assert (t.key.scope, t.key.subject, t.site) == (Scope.APPLIANCE, "sea01-a01", "sea01")


def test_the_first_appliance_label_set_wins() -> None:
    assert target(one(appliance="sea01-a02", instance="sea01-a01:9100")).key.subject == "sea01-a02"


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("sea01-a01:9100", "sea01-a01"),
        ("sea01-a01", "sea01-a01"),
        ("10.0.0.5:80", "10.0.0.5"),
        ("[2001:db8::1]:9100", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("host:http", "host:http"),
        (":9100", ":9100"),
    ],
)
def test_host_of(value: str, host: str) -> None:
    assert host_of(value) == host


def test_only_a_site_label_makes_a_site_incident() -> None:
    t = target(one(site="fra02"))
    assert t.key == Key(Scope.SITE, "fra02", IncidentKind.ALERT, "EdgeDown")
    assert t.site == "fra02"


def test_neither_makes_a_fleet_incident() -> None:
    t = target(one(job="origin"))
    assert t.key == Key(Scope.FLEET, "fleet", IncidentKind.ALERT, "EdgeDown")
    assert t.site == ""


def test_labels_are_configurable() -> None:
    config = AlertmanagerConfig(
        appliance_labels=("host",), site_labels=("dc", "pop"), name_label="rule",
        severity_label="level",
    )  # fmt: skip
    a = one(rule="Hot", host="sea01-a01", pop="sea01", level="critical", appliance="x")
    t = target(a, config)
    assert t.key == Key(Scope.APPLIANCE, "sea01-a01", IncidentKind.ALERT, "Hot")
    assert (t.site, t.severity) == ("sea01", Severity.CRITICAL)


@pytest.mark.parametrize(
    ("value", "severity"),
    [
        ("critical", Severity.CRITICAL),
        ("Critical ", Severity.CRITICAL),
        ("page", Severity.CRITICAL),
        ("warning", Severity.WARNING),
        ("info", Severity.WARNING),
        ("whatever", Severity.WARNING),
        ("", Severity.WARNING),
    ],
)
def test_severity_mapping(value: str, severity: Severity) -> None:
    assert target(one(severity=value)).severity is severity


def test_severity_mapping_and_default_are_configurable() -> None:
    config = AlertmanagerConfig(severities={"P1": "critical"}, default_severity="critical")
    assert target(one(severity="p1"), config).severity is Severity.CRITICAL
    assert target(one(severity="critical"), config).severity is Severity.CRITICAL  # default
    config = AlertmanagerConfig(severities={"P1": "critical"})
    assert target(one(severity="critical"), config).severity is Severity.WARNING


def test_copy_labels_selects_what_the_incident_carries() -> None:
    config = AlertmanagerConfig(copy_labels=("team", "cdn_*"))
    t = target(one(team="edge", cdn_tier="gold", job="x", site="sea01"), config)
    assert t.labels == {"team": "edge", "cdn_tier": "gold"}


def test_an_alert_without_a_name_cannot_be_mapped() -> None:
    (a,) = parse_notification(
        notification(alert() | {"labels": {"appliance": "sea01-a01"}}), max_alerts=1
    ).alerts
    with pytest.raises(Skip, match=r"^no alertname label$"):
        target(a)


def test_match_selects_alerts_by_label_with_wildcards() -> None:
    config = AlertmanagerConfig(match={"team": "cdn*", "env": "prod"})
    assert selected(config, {"team": "cdn-edge", "env": "prod"})
    assert not selected(config, {"team": "db", "env": "prod"})
    assert not selected(config, {"team": "cdn"})
    assert selected(DEFAULT, {})


def test_config_rejects_names_that_are_not_label_names() -> None:
    with pytest.raises(ValidationError, match="'site-name' is not a Prometheus label name"):
        AlertmanagerConfig(site_labels=("site-name",))
    with pytest.raises(ValidationError, match="Input should be 'warning' or 'critical'"):
        AlertmanagerConfig(severities={"p1": "urgent"})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AlertmanagerConfig.model_validate({"appliance_label": "host"})


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (
            {"appliance": "sea01/a01"},
            f"appliance 'sea01/a01' is not an appliance id ({RULE})",
        ),
        (
            {"instance": "[2001:db8::1]:9100"},
            f"appliance '2001:db8::1' is not an appliance id ({RULE})",
        ),
        (
            {"site": "sea 01"},
            f"site 'sea 01' is not a site name ({RULE})",
        ),
    ],
)
def test_values_that_cannot_name_an_appliance_or_site_are_skipped(
    labels: dict[str, str], reason: str
) -> None:
    with pytest.raises(Skip) as exc:
        target(one(**labels))
    assert str(exc.value) == reason


def test_alert_names_with_control_characters_are_skipped() -> None:
    with pytest.raises(Skip, match="holds control characters"):
        target(one("Edge\nDown"))
    assert target(one("High memory usage")).key.family == "High memory usage"
