"""/api/v1 reads: appliances, incidents, executions, playbooks, openapi.json, JSON errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from api_v1 import FLEET, running_api
from api_v1 import hot as hot_anomaly

from cdnops.api.v1 import ROUTES


async def test_appliances_before_the_first_tick(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        assert await api.get("/appliances") == (200, {"tick": None, "total": 0, "items": []})
        status, body = await api.get("/appliances/sea01-a")
        assert status == 404
        assert body == {"error": "no appliance sea01-a in the latest tick"}


async def test_appliances_with_filters_and_pages(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        api.tick(hot_anomaly())
        status, body = await api.get("/appliances")
        assert status == 200
        assert body["total"] == len(FLEET)
        assert [a["id"] for a in body["items"]] == [a for a, _ in FLEET]
        first = body["items"][0]
        assert first["site"] == "sea01"
        assert first["state"] == "serving"
        assert first["up"] is True
        assert first["last_poll"] == "ok"
        assert first["metrics"]["cpu_util"] == 0.0
        assert first["services"] == {"nginx": "running"}
        assert [x["explanation"] for x in first["anomalies"]] == ["cpu_util high"]
        assert body["items"][1]["anomalies"] == []
        assert body["tick"]["seq"] == 1

        _, page = await api.get("/appliances", site="ams02", limit="1", offset="1")
        assert (page["total"], [a["id"] for a in page["items"]]) == (2, ["ams02-b"])
        _, only = await api.get("/appliances", anomalous="true")
        assert [a["id"] for a in only["items"]] == ["sea01-a"]
        _, none = await api.get("/appliances", site="nowhere")
        assert (none["total"], none["items"]) == (0, [])

        status, one = await api.get("/appliances/ams02-b")
        assert status == 200
        assert one["id"] == "ams02-b"
        assert one["tick"]["seq"] == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "0"}, "?limit must be between 1 and 1000, got 0"),
        ({"limit": "ten"}, "?limit must be a whole number, got 'ten'"),
        ({"state": "asleep"}, "?state must be one of unknown, serving, draining, drained, "
                              "maintenance, got 'asleep'"),
    ],
)  # fmt: skip
async def test_bad_queries_are_json_errors(
    tmp_path: Path, query: dict[str, str], message: str
) -> None:
    async with running_api(tmp_path) as api:
        api.tick()
        assert await api.get("/appliances", **query) == (400, {"error": message})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def test_incidents_list_detail_and_filters(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        api.tick(hot_anomaly())
        status, body = await api.get("/incidents")
        assert status == 200
        [inc] = body["items"]
        assert (body["total"], body["offset"]) == (1, 0)
        assert (inc["status"], inc["scope"], inc["subject"]) == ("open", "appliance", "sea01-a")
        assert inc["acknowledged_by"] is None
        assert (await api.get("/incidents", site="ams02"))[1]["items"] == []
        assert (await api.get("/incidents", status="resolved"))[1]["items"] == []

        status, detail = await api.get(f"/incidents/{inc['id']}")
        assert status == 200
        assert {e["event"] for e in detail["timeline"]} == {"opened"}
        assert detail["anomalies"][0]["metric"] == "cpu_util"
        assert detail["triage"] == []

        assert await api.get("/incidents/inc-nope") == (404, {"error": "no incident inc-nope"})
        status, err = await api.get("/incidents", status="closed")
        assert status == 400
        assert err["error"].startswith("?status must be one of open, resolved")


async def test_resolved_incidents_come_from_the_store(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        api.tick(hot_anomaly())
        api.clock.now += 1
        api.tick(seq=2)  # quiet
        api.clock.now += api.tracker.config.clean_period_s + 1
        api.tick(seq=3)  # resolved
        _, body = await api.get("/incidents", status="resolved")
        assert [i["status"] for i in body["items"]] == ["resolved"]
        assert (await api.get("/incidents", status="open"))[1]["items"] == []
        # a day later it is out of the default list, but ?since reaches back to it
        resolved_ts = body["items"][0]["resolved_ts"]
        api.clock.now += 86400 + 1
        assert (await api.get("/incidents", status="resolved"))[1]["items"] == []
        for since in (str(resolved_ts), _iso(resolved_ts)):
            _, back = await api.get("/incidents", status="resolved", since=since)
            assert [i["id"] for i in back["items"]] == [body["items"][0]["id"]]
        _, after = await api.get("/incidents", status="resolved", since=str(resolved_ts + 1))
        assert after["items"] == []
        status, err = await api.get("/incidents", since="yesterday")
        assert status == 400
        assert err["error"].startswith("?since must be Unix seconds or ISO 8601")
        status, err = await api.get("/incidents", since="2026-12-01T08:00:00")
        assert status == 400  # no timezone: which 08:00?


async def test_incidents_page_newest_first(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        appliances = ["sea01-a", "ams02-a", "ams02-b"]
        for k in range(len(appliances)):
            api.clock.now += 1
            api.tick(*(hot_anomaly(x, x[:5]) for x in appliances[: k + 1]), seq=k + 1)
        _, whole = await api.get("/incidents")
        opened = [i["opened_ts"] for i in whole["items"]]
        assert whole["total"] == len(opened) >= 3
        assert opened == sorted(opened, reverse=True)
        ids = [i["id"] for i in whole["items"]]
        _, page = await api.get("/incidents", limit="2", offset="1")
        assert (page["total"], page["offset"]) == (whole["total"], 1)
        assert [i["id"] for i in page["items"]] == ids[1:3]
        _, past = await api.get("/incidents", offset=str(len(ids)))
        assert (past["total"], past["items"]) == (len(ids), [])


async def test_executions_and_their_audit(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        api.tick(hot_anomaly())
        started = api.remediator.tick(
            api.frame,  # type: ignore[arg-type]
            api.tracker.open_incidents(),
            api.tracker.releasable(),
        )
        assert [ex.pb.name for ex in started] == ["escalate-hot"]
        await api.remediator.wait_idle(10)
        status, body = await api.get("/executions")
        assert status == 200
        [ex] = body["items"]
        assert (ex["playbook"], ex["status"], ex["dry_run"]) == ("escalate-hot", "succeeded", True)
        assert (await api.get("/executions", status="failed"))[1]["items"] == []
        assert (await api.get("/executions", offset="1"))[1] == {"offset": 1, "items": []}
        status, one = await api.get(f"/executions/{ex['id']}")
        assert status == 200
        assert "escalated" in [a["event"] for a in one["audit"]]
        assert await api.get("/executions/nope") == (404, {"error": "no execution nope"})


async def test_playbooks_list(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        status, body = await api.get("/playbooks")
        assert status == 200
        by_name = {p["name"]: p for p in body["items"]}
        assert set(by_name) == {"restart-nginx", "escalate-hot"}
        nginx = by_name["restart-nginx"]
        assert nginx["trigger"] == {"kind": ["service_failed"], "metric": ["service:nginx"]}
        assert (nginx["mode"], nginx["breaker"], nginx["manual"]) == ("enforce", "closed", False)
        assert nginx["file"] == f"{api.playbooks_dir / 'main.yaml'}:2"


async def test_openapi_describes_every_route(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        status, doc = await api.get("/openapi.json")
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert described == {(r.method, f"/api/v1{r.path}") for r in ROUTES}
    assert len(described) == 16
    silence = doc["paths"]["/api/v1/silences"]["post"]
    assert silence["security"] == [{"bearer": []}]
    ref = silence["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/SilenceRequest"
    assert "comment" in doc["components"]["schemas"]["SilenceRequest"]["required"]
    assert "security" not in doc["paths"]["/api/v1/incidents"]["get"]
    params = doc["paths"]["/api/v1/incidents/{id}"]["get"]["parameters"]
    assert params == [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]


async def test_unknown_routes_and_methods_are_json(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        status, body = await api.get("/nothing-here")
        assert status == 404
        assert body == {"error": "no such route; GET /api/v1/openapi.json lists them all"}
        status, body = await api.send("PUT", "/incidents")
        assert status == 405
        assert "does not take that method" in body["error"]


async def test_openapi_passes_the_spec_validator(tmp_path: Path) -> None:
    validator = pytest.importorskip(
        "openapi_spec_validator", reason="openapi-spec-validator (a test dependency) is missing"
    )
    async with running_api(tmp_path) as api:
        _, doc = await api.get("/openapi.json")
    validator.validate(doc)  # raises on any departure from OpenAPI 3.1
