"""/api/api-tools: CRUD, write-only secret headers, input validation and real calls to a local server."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from app.extensions import db
from app.models import Agent, UsageRecord
from tests.app.test_outbound import METADATA_URL, EchoServer, closed_port

SECRET = "Bearer tok-9f8e7d6c5b4a-SECRET"


@pytest.fixture(scope="module")
def server():
    with EchoServer() as srv:
        yield srv


@pytest.fixture
def echo(server):
    server.requests.clear()
    return server


def tool_body(echo, **overrides):
    body = {
        "name": "weather",
        "description": "Current weather for a city",
        "method": "GET",
        "url_template": f"{echo.base}/echo/{{{{city}}}}?units={{{{units}}}}",
        "headers": [
            {"name": "Authorization", "value": SECRET, "secret": True},
            {"name": "Accept", "value": "application/json"},
        ],
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "units": {"enum": ["metric", "imperial"]}},
            "required": ["city", "units"],
        },
        "timeout_seconds": 5,
    }
    body.update(overrides)
    return body


def create(api, echo, **overrides) -> dict:
    res = api.post("/api/api-tools", json=tool_body(echo, **overrides))
    assert res.status_code == 201, res.json
    return res.json["data"]


def assert_no_secret(res):
    assert "tok-9f8e7d6c5b4a" not in res.get_data(as_text=True)


# --- CRUD and secrets -----------------------------------------------------------------------------


def test_create_masks_secret_headers_and_encrypts_them(api, echo):
    res = api.post("/api/api-tools", json=tool_body(echo))
    assert res.status_code == 201, res.json
    assert_no_secret(res)
    data = res.json["data"]
    assert data["id"].startswith("apitool_") and data["created_at"].endswith("Z")
    auth, accept = data["headers"]
    assert auth == {"name": "Authorization", "secret": True, "value_masked": "****CRET"}
    assert accept == {"name": "Accept", "secret": False, "value": "application/json"}
    stored = db.session.execute(text("SELECT headers FROM api_tools WHERE id = :id"), {"id": data["id"]}).scalar_one()
    assert "tok-9f8e7d6c5b4a" not in str(stored)
    for path in ("/api/api-tools", f"/api/api-tools/{data['id']}"):
        res = api.get(path)
        assert res.status_code == 200
        assert_no_secret(res)


def test_defaults(api, echo):
    body = tool_body(echo)
    for key in ("headers", "input_schema", "timeout_seconds", "description"):
        body.pop(key)
    body["url_template"] = f"{echo.base}/ping"
    res = api.post("/api/api-tools", json=body)
    assert res.status_code == 201, res.json
    data = res.json["data"]
    assert data["headers"] == [] and data["input_schema"] == {"type": "object"}
    assert data["timeout_seconds"] == 10.0 and data["description"] is None


def test_duplicate_name_is_409(api, echo):
    create(api, echo)
    res = api.post("/api/api-tools", json=tool_body(echo))
    assert res.status_code == 409 and res.json["error"]["code"] == "duplicate_name"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"method": "TRACE"}, "method"),
        ({"url_template": "ftp://example.com/x"}, "url_template"),
        ({"url_template": "http://{{host}}/x"}, "url_template"),
        ({"url_template": "http://example.com:{{port}}/x"}, "url_template"),
        ({"url_template": "http://example.com/{{bad-name}}"}, "url_template"),
        ({"timeout_seconds": 0.05}, "timeout_seconds"),
        ({"timeout_seconds": 121}, "timeout_seconds"),
        ({"input_schema": {"type": "nope"}}, "input_schema"),
        ({"input_schema": {"properties": {"a": {"minLength": -1}}}}, "input_schema"),
        ({"input_schema": {"type": "string"}}, "input_schema"),
        ({"headers": [{"name": "Bad Name", "value": "x"}]}, "headers"),
        ({"headers": [{"name": "X-A", "value": "a\r\nX-Injected: 1"}]}, "headers"),
        ({"headers": [{"name": "Host", "value": "internal"}]}, "headers"),
        ({"headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]}, "headers"),
        ({"headers": [{"name": "X-A", "secret": True}]}, "headers"),
        ({"headers": [{"name": "X-A"}]}, "headers"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_tools_are_422(api, echo, overrides, field):
    res = api.post("/api/api-tools", json=tool_body(echo, **overrides))
    assert res.status_code == 422, res.json
    assert field in res.json["error"]["details"]["fields"], res.json


def test_update_keeps_a_secret_sent_without_value(api, echo):
    tool = create(api, echo)
    res = api.put(f"/api/api-tools/{tool['id']}", json={
        "description": "new",
        "headers": [{"name": "Authorization", "secret": True}, {"name": "X-Extra", "value": "1"}],
    })
    assert res.status_code == 200, res.json
    assert_no_secret(res)
    data = res.json["data"]
    assert data["description"] == "new" and data["method"] == "GET"
    assert data["headers"][0]["value_masked"] == "****CRET"
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {"city": "Oslo", "units": "metric"}})
    assert res.status_code == 200, res.json
    assert echo.requests[-1]["headers"]["Authorization"] == SECRET
    assert echo.requests[-1]["headers"]["X-Extra"] == "1"


def test_changing_the_destination_needs_the_secrets_again(api, echo):
    tool = create(api, echo)
    res = api.put(f"/api/api-tools/{tool['id']}", json={"url_template": "https://attacker.example/collect"})
    assert res.status_code == 422 and res.json["error"]["code"] == "secret_required"
    assert res.json["error"]["details"] == {"headers": ["Authorization"]}
    # same origin, other path: fine
    res = api.put(f"/api/api-tools/{tool['id']}", json={"url_template": f"{echo.base}/other/{{{{city}}}}"})
    assert res.status_code == 200, res.json
    # new origin with the secret sent again: fine
    res = api.put(f"/api/api-tools/{tool['id']}", json={
        "url_template": "https://api.example/v1/{{city}}",
        "headers": [{"name": "Authorization", "value": "Bearer new-one-123456", "secret": True}],
    })
    assert res.status_code == 200, res.json
    assert res.json["data"]["headers"] == [{"name": "Authorization", "secret": True, "value_masked": "****3456"}]


def test_a_secret_cannot_be_kept_under_a_new_name(api, echo):
    tool = create(api, echo)
    res = api.put(f"/api/api-tools/{tool['id']}", json={"headers": [{"name": "X-Other", "secret": True}]})
    assert res.status_code == 422
    assert "headers" in res.json["error"]["details"]["fields"]


def test_viewer_reads_operator_writes(api, echo, make_key):
    viewer, operator = make_key("viewer"), make_key("operator")
    res = api.post("/api/api-tools", json=tool_body(echo), key=viewer)
    assert res.status_code == 403 and res.json["error"]["code"] == "insufficient_role"
    res = api.post("/api/api-tools", json=tool_body(echo), key=operator)
    assert res.status_code == 201  # secret headers included: see the route's docstring
    tool_id = res.json["data"]["id"]
    assert api.get(f"/api/api-tools/{tool_id}", key=viewer).status_code == 200
    for method, path, kw in (
        ("put", f"/api/api-tools/{tool_id}", {"json": {"description": "x"}}),
        ("post", f"/api/api-tools/{tool_id}/test", {"json": {"input": {}}}),
        ("delete", f"/api/api-tools/{tool_id}", {}),
    ):
        assert getattr(api, method)(path, key=viewer, **kw).status_code == 403
    assert api.delete(f"/api/api-tools/{tool_id}", key=operator).status_code == 200


def test_list_filters_and_sorts(api, echo):
    create(api, echo, name="b-tool")
    create(api, echo, name="a-tool", method="POST")
    res = api.get("/api/api-tools?sort=name&order=asc")
    assert [t["name"] for t in res.json["data"]] == ["a-tool", "b-tool"]
    assert res.json["pagination"] == {"page": 1, "limit": 20, "total": 2, "next_cursor": None}
    assert [t["name"] for t in api.get("/api/api-tools?method=POST").json["data"]] == ["a-tool"]


def test_delete_refused_while_an_agent_uses_it(api, echo):
    tool = create(api, echo)
    db.session.add(Agent(name="helper", tools=[tool["id"]]))
    db.session.commit()
    res = api.delete(f"/api/api-tools/{tool['id']}")
    assert res.status_code == 409 and res.json["error"]["details"]["agents"] == ["helper"]


def test_delete_and_404(api, echo):
    tool = create(api, echo)
    res = api.delete(f"/api/api-tools/{tool['id']}")
    assert res.json == {"success": True, "message": "API tool deleted"}
    assert api.get(f"/api/api-tools/{tool['id']}").status_code == 404
    assert api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {}}).status_code == 404


# --- the test call --------------------------------------------------------------------------------


def test_call_fills_the_url_sends_the_secret_and_never_returns_it(api, echo):
    tool = create(api, echo)
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {"city": "New York/NY", "units": "metric"}})
    assert res.status_code == 200, res.json
    assert_no_secret(res)
    result = res.json["data"]
    seen = echo.requests[-1]
    assert seen["method"] == "GET" and seen["raw_path"] == "/echo/New%20York%2FNY?units=metric"
    assert seen["headers"]["Authorization"] == SECRET  # the secret did reach the server
    assert result["status_code"] == 200 and result["truncated"] is False
    assert result["url"] == f"{echo.base}/echo/New%20York%2FNY?units=metric"
    assert result["headers"]["content-type"] == "application/json"
    assert result["latency_ms"] > 0
    echoed = json.loads(result["body"])
    assert echoed["headers"]["Authorization"] == "[redacted]"
    assert echoed["headers"]["Accept"] == "application/json"
    assert echoed["body"] == ""


def test_post_sends_the_input_the_url_did_not_use_as_json(api, echo):
    tool = create(api, echo, method="POST", url_template=f"{echo.base}/items/{{{{kind}}}}",
                  input_schema={"type": "object", "required": ["kind"]})
    res = api.post(f"/api/api-tools/{tool['id']}/test",
                   json={"input": {"kind": "book", "title": "Dune", "tags": ["sf"]}})
    assert res.status_code == 200, res.json
    seen = echo.requests[-1]
    assert seen["method"] == "POST" and seen["path"] == "/items/book"
    assert json.loads(seen["body"]) == {"title": "Dune", "tags": ["sf"]}
    assert seen["headers"]["Content-Type"] == "application/json"


def test_call_writes_one_usage_row(api, echo, make_key):
    operator = make_key("operator")
    tool = create(api, echo)
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {"city": "Oslo", "units": "metric"}},
                   key=operator)
    assert res.status_code == 200
    rows = db.session.execute(select(UsageRecord)).scalars().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.entity_type, row.entity_id, row.operation) == ("api_tool", tool["id"], "tool")
    assert (row.prompt_tokens, row.completion_tokens, row.cost) == (0, 0, 0.0)
    assert row.latency_ms > 0 and row.api_key_id is not None
    assert row.details["status_code"] == 200 and row.details["host"] == "127.0.0.1"
    assert "tok-9f8e7d6c5b4a" not in json.dumps(row.details)


@pytest.mark.parametrize(
    "payload, path",
    [
        ({"units": "metric"}, "$"),
        ({"city": 5, "units": "metric"}, "$.city"),
        ({"city": "Oslo", "units": "kelvin"}, "$.units"),
    ],
)
def test_input_is_validated_against_the_schema(api, echo, payload, path):
    tool = create(api, echo)
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": payload})
    assert res.status_code == 422, res.json
    assert res.json["error"]["details"]["path"] == path
    assert res.json["error"]["details"]["errors"]
    assert echo.requests == []


def test_missing_placeholder_value_is_422(api, echo):
    tool = create(api, echo, input_schema={"type": "object"})
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {"city": "Oslo"}})
    assert res.status_code == 422 and res.json["error"]["details"]["missing"] == ["units"]


def test_redirect_is_reported_not_followed(api, echo):
    tool = create(api, echo, url_template=f"{echo.base}/redirect", input_schema={"type": "object"})
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {}})
    assert res.status_code == 200
    assert res.json["data"]["status_code"] == 302
    assert res.json["data"]["headers"]["location"] == METADATA_URL
    assert len(echo.requests) == 1


def test_large_body_is_truncated(api, echo):
    tool = create(api, echo, url_template=f"{echo.base}/big", input_schema={"type": "object"})
    data = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {}}).json["data"]
    assert data["truncated"] is True and len(data["body"]) == 64 * 1024


def test_timeout_is_504_and_recorded(api, echo):
    tool = create(api, echo, url_template=f"{echo.base}/slow", input_schema={"type": "object"}, timeout_seconds=0.2)
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {}})
    assert res.status_code == 504 and res.json["error"]["code"] == "timeout"
    assert_no_secret(res)
    row = db.session.execute(select(UsageRecord)).scalar_one()
    assert row.details["error"] == "timeout"


def test_connection_error_is_502(api, echo):
    tool = create(api, echo, url_template=f"http://127.0.0.1:{closed_port()}/x", input_schema={"type": "object"})
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {}})
    assert res.status_code == 502 and res.json["error"]["code"] == "upstream_error"
    assert_no_secret(res)


def test_local_target_refused_when_not_allowlisted(api, echo, app, monkeypatch):
    monkeypatch.setattr(app.extensions["magnet.config"], "outbound_allowlist", [])
    tool = create(api, echo, input_schema={"type": "object"})
    res = api.post(f"/api/api-tools/{tool['id']}/test", json={"input": {"city": "x", "units": "metric"}})
    assert res.status_code == 403 and res.json["error"]["code"] == "outbound_blocked"
    assert res.json["error"]["details"]["address"] == "127.0.0.1"
    assert echo.requests == []
    assert db.session.execute(select(UsageRecord)).first() is None  # no call made, nothing metered


def test_call_tool_is_usable_without_a_request(app, api, echo):
    """The agent runtime calls tools through the service, outside any HTTP request."""
    from app.services.api_tools import call_tool

    tool = create(api, echo)
    result = call_tool(tool["id"], {"city": "Rome", "units": "metric"}, usage_details={"agent_id": "agent_x"})
    assert result["status_code"] == 200
    assert echo.requests[-1]["headers"]["Authorization"] == SECRET
    assert SECRET not in json.dumps(result)
    row = db.session.execute(select(UsageRecord)).scalar_one()
    assert row.details["agent_id"] == "agent_x" and row.api_key_id is None
    from app.runtime.outbound import OutboundBlocked

    with pytest.raises(OutboundBlocked):
        call_tool(tool["id"], {"city": "Rome", "units": "metric"}, allowlist=[])
