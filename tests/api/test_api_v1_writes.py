"""/api/v1 writes: silences, acknowledgements, breaker reset, playbook reload and runs, the
Alertmanager route; validation errors as JSON an operator can act on."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from api_v1 import hot as hot_anomaly
from api_v1 import running_api
from fleetkit import T0

from cdnops.config.incidents import IncidentsConfig
from cdnops.control import Control
from cdnops.incidents.events import Change, EventType

SILENCE = {"site": "sea01", "duration_s": 600, "comment": "maintenance, ask ops", "by": "ana"}


async def test_silence_create_list_apply_expire(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        status, made = await api.send("POST", "/silences", SILENCE)
        assert status == 201
        assert made["id"].startswith("sil-")
        assert (made["starts_ts"], made["ends_ts"]) == (T0, T0 + 600)
        assert (made["created_by"], made["source"]) == ("ana", "runtime")
        assert made["ends_at"] == "2025-12-01T00:10:00.000Z".replace("Z", "+00:00")
        assert [s["id"] for s in (await api.get("/silences"))[1]["items"]] == [made["id"]]
        assert [s["id"] for s in api.store.silences(T0)] == [made["id"]]

        api.tick(hot_anomaly())  # the silence applies from this tick on
        [inc] = api.tracker.open_incidents()
        assert inc.silenced_by == made["id"]

        status, body = await api.send("DELETE", f"/silences/{made['id']}")
        assert (status, body) == (200, {"id": made["id"], "expired": True})
        assert api.store.silences(T0) == []
        assert (await api.get("/silences"))[1] == {"items": []}
        api.clock.now += 1
        api.tick(hot_anomaly(), entered=False, seq=2)
        assert api.tracker.open_incidents()[0].silenced_by is None
        status, body = await api.send("DELETE", f"/silences/{made['id']}")
        assert (status, body) == (404, {"error": f"no run-time silence {made['id']}"})


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({"site": "x", "duration_s": 60}, ["comment: required"]),
        ({"duration_s": 60, "comment": "c"},
         ["body: give at least one matcher (appliance, site, metric, kind or labels): "
          "a silence of everything would hide every incident"]),
        ({"site": "x", "comment": "c"}, ["body: give exactly one of ends_at or duration_s"]),
        ({"site": "x", "comment": "c", "duration_s": "5m"},
         ["duration_s: Input should be a valid number, unable to parse string as a number"]),
        ({"site": "x", "comment": "c", "duration_s": 60, "until": 3}, ["until: unknown field"]),
        ({"site": "x", "comment": "c", "ends_at": "2025-12-01T00:10:00"},
         ["ends_at: Input should have timezone info"]),
        ({"site": "x", "comment": "c", "ends_at": "2025-11-30T00:00:00Z"},
         ["ends_at: 2025-11-30T00:00:00+00:00 is in the past"]),
        ({"site": "x", "comment": "c", "duration_s": 31 * 86400},
         ["duration_s: Input should be less than or equal to 2592000"]),
    ],
)  # fmt: skip
async def test_silence_validation_errors(
    tmp_path: Path, body: dict[str, Any], problems: list[str]
) -> None:
    async with running_api(tmp_path) as api:
        status, err = await api.send("POST", "/silences", body)
        assert status == 422
        assert err == {"error": "the request is not valid", "problems": problems}
        assert api.tracker.silences.all() == []


async def test_bodies_that_are_not_json_objects(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        status, err = await api.send("POST", "/silences", data=b"{not json")
        assert status == 400
        assert err["error"].startswith("the body is not valid JSON: ")
        status, err = await api.send("POST", "/silences", [1, 2])
        assert (status, err["problems"]) == (422, ["the body must be a JSON object, got an array"])
        status, err = await api.send("POST", "/silences", data=io.BytesIO(b"x" * (1024**2 + 1)))
        assert (status, err) == (413, {"error": "the request body is too large"})


async def test_config_silences_cannot_be_expired_by_the_api(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        silence = {
            "site": "ams02",
            "starts_at": "2025-01-01T00:00:00Z",
            "ends_at": "2030-01-01T00:00:00Z",
            "comment": "decommissioning",
        }
        raw = {"triage": {"enabled": False}, "silences": [silence]}
        api.tracker.reload(IncidentsConfig.model_validate(raw))  # what SIGHUP does
        status, body = await api.get("/silences")
        assert [(s["id"], s["source"]) for s in body["items"]] == [("config-0", "config")]
        status, err = await api.send("DELETE", "/silences/config-0")
        assert status == 409
        assert err["error"] == (
            "silence config-0 is written in the config file: remove it there and reload (SIGHUP)"
        )


async def test_ack_lands_on_the_timeline_and_the_bus(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        api.tick(hot_anomaly())
        [inc] = api.tracker.open_incidents()
        body = {"by": "ana", "comment": "looking at the fan"}
        status, acked = await api.send("POST", f"/incidents/{inc.id}/ack", body)
        assert status == 200
        assert acked["acknowledged_by"] == "ana"
        assert acked["timeline"][-1]["event"] == "acknowledged"
        assert acked["timeline"][-1]["detail"] == "by ana: looking at the fan"
        # written at once, not at the next tick
        assert [r.event for r in api.store.timeline(inc.id)][-1] == "acknowledged"
        last = api.events[-1]
        assert (last.type, last.change, last.incident.acknowledged_by) == (
            EventType.UPDATED,
            Change.ACKNOWLEDGED,
            "ana",
        )
        status, err = await api.send("POST", "/incidents/inc-nope/ack", {"by": "ana"})
        assert (status, err) == (404, {"error": "no incident inc-nope"})
        status, err = await api.send("POST", f"/incidents/{inc.id}/ack", {"by": "a\nb"})
        assert status == 422
        assert err["problems"][0].startswith("by: String should match pattern")


async def test_breaker_reset(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        guards = api.remediator.guards
        for _ in range(api.remediator.config.breaker.failures):
            guards.record_result("restart-nginx", ok=False)
        _, books = await api.get("/playbooks")
        assert {p["name"]: p["breaker"] for p in books["items"]}["restart-nginx"] == "open"

        status, body = await api.send(
            "POST", "/playbooks/restart-nginx/breaker/reset", {"by": "ana"}
        )
        assert (status, body) == (
            200,
            {"playbook": "restart-nginx", "reset": True, "breaker": "closed"},
        )
        assert guards.breaker_state("restart-nginx") == "closed"
        [audit] = [a for a in api.store.audit() if a.event == "breaker_reset"]
        assert audit.detail["by"] == "ana"

        status, body = await api.send("POST", "/playbooks/restart-nginx/breaker/reset")
        assert (status, body["reset"]) == (200, False)
        status, err = await api.send("POST", "/playbooks/nope/breaker/reset")
        assert (status, err) == (404, {"error": "no playbook nope"})  # fmt: skip


async def test_playbook_reload_takes_a_good_set_and_keeps_the_old_on_errors(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path) as api:
        main = api.playbooks_dir / "main.yaml"
        main.write_text(
            "playbooks:\n  - name: only-one\n    trigger: {metric: cpu_util}\n"
            "    steps:\n      - action: escalate\n        params: {reason: hot}\n"
        )
        status, body = await api.send("POST", "/playbooks/reload")
        assert (status, body) == (200, {"playbooks": 1, "files": [str(main)]})
        assert list(api.remediator.playbooks.playbooks) == ["only-one"]

        main.write_text("playbooks:\n  - name: broken\n    trigger: {metric: cpu_util}\n")
        status, err = await api.send("POST", "/playbooks/reload")
        assert status == 422
        n = len(err["problems"])
        assert err["error"] == f"the playbooks have {n} errors; the running set is kept"
        assert f"{main}:2:5: playbooks[0].steps: required key is missing" in err["problems"][-1]
        assert list(api.remediator.playbooks.playbooks) == ["only-one"]


async def test_manual_run(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        api.tick()
        api.remediator.feed.push(api.frame)  # type: ignore[arg-type]
        body = {"subject": "sea01-a", "by": "ana", "reason": "drill"}
        status, started = await api.send("POST", "/playbooks/escalate-hot/run", body)
        assert status == 202, started
        assert (started["playbook"], started["subject"]) == ("escalate-hot", "sea01-a")
        await api.remediator.wait_idle(10)
        _, ex = await api.get(f"/executions/{started['execution_id']}")
        assert ex["status"] == "succeeded"
        status, err = await api.send("POST", "/playbooks/escalate-hot/run", {"subject": "nowhere"})
        assert status == 409
        assert "nowhere" in err["error"]
        status, err = await api.send("POST", "/playbooks/escalate-hot/run", {})
        assert (status, err["problems"]) == (422, ["subject: required"])
        status, err = await api.send("POST", "/playbooks/nope/run", {"subject": "sea01-a"})
        assert (status, err) == (404, {"error": "no playbook nope"})


class _Result:
    def __init__(self, n: int) -> None:
        self.n = n

    def to_json(self) -> dict[str, Any]:
        return {"alerts": self.n}


class _Intake:
    """Stands in for the Alertmanager intake (its own tests live with it): only the routing
    and the error mapping are under test here."""

    def ingest(self, payload: object) -> _Result:
        if not isinstance(payload, dict) or payload.get("version") != "4":
            raise ValueError('version: must be "4" (Alertmanager webhook version 4)')
        return _Result(len(payload.get("alerts", [])))


async def test_alertmanager_route(tmp_path: Path) -> None:
    payload = {"version": "4", "status": "firing", "alerts": [{}, {}]}
    async with running_api(tmp_path) as api:
        status, err = await api.send("POST", "/alerts/alertmanager", payload)
        assert (status, err) == (
            503,
            {"error": "the Alertmanager intake is not enabled in the config"},
        )
        api.control.intake = _Intake()
        assert await api.send("POST", "/alerts/alertmanager", payload) == (200, {"alerts": 2})
        status, err = await api.send("POST", "/alerts/alertmanager", {"version": "3"})
        assert (status, err["error"]) == (
            422,
            'version: must be "4" (Alertmanager webhook version 4)',
        )
        status, err = await api.send("POST", "/alerts/alertmanager", payload, token=None)
        assert status == 401


def test_control_without_remediation_says_so(tmp_path: Path) -> None:
    from cdnops.control import UnavailableError
    from cdnops.incidents.events import EventBus
    from cdnops.incidents.tracker import IncidentTracker
    from cdnops.store.db import Store

    cfg = IncidentsConfig.model_validate({"triage": {"enabled": False}})
    with Store(tmp_path / "s.db") as store, IncidentTracker(cfg, store, EventBus()) as tracker:
        control = Control(tracker, store, latest=lambda: (None, None))
        with pytest.raises(UnavailableError, match=r"remediation is disabled \(remediation"):
            control.reset_breaker("x", "ana")
        assert len(control.playbooks()) == 0
