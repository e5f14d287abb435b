"""/api/agents: CRUD, the default chat model, tool ids checked against their tables, roles."""
from __future__ import annotations

import pytest

from app.services.llm_models import ensure_builtin_models

CHAT_MODEL = {
    "name": "gpt-like",
    "provider": "openai_compatible",
    "model_id": "llama-3-8b",
    "endpoint": "http://127.0.0.1:8000/v1",
    "kind": "chat",
}


@pytest.fixture
def models(api) -> dict:
    """name -> id of the built-in models (local-extractive is the default chat model) and one more."""
    ensure_builtin_models()
    found = {m["name"]: m["id"] for m in api.get("/api/models").json["data"]}
    found["gpt-like"] = api.post("/api/models", json=CHAT_MODEL).json["data"]["id"]
    return found


@pytest.fixture
def api_tool_id(api) -> str:
    res = api.post("/api/api-tools", json={
        "name": "lookup", "method": "GET", "url_template": "https://api.example/lookup/{{q}}",
    })
    assert res.status_code == 201, res.json
    return res.json["data"]["id"]


def agent_body(**overrides) -> dict:
    body = {
        "name": "helpdesk",
        "description": "Answers IT questions",
        "role": "IT support",
        "system_prompt": "You are a helpful IT support agent.",
        "temperature": 0.5,
        "max_tokens": 2048,
        "topics": ["vpn", "email"],
    }
    body.update(overrides)
    return body


def test_create_with_default_chat_model(api, models):
    res = api.post("/api/agents", json=agent_body())
    assert res.status_code == 201, res.json
    data = res.json["data"]
    assert data["id"].startswith("agent_") and data["created_at"].endswith("Z")
    assert data["model_id"] == models["local-extractive"]
    assert data["status"] == "active" and data["tools"] == [] and data["topics"] == ["vpn", "email"]
    assert (data["temperature"], data["max_tokens"]) == (0.5, 2048)
    assert api.get(f"/api/agents/{data['id']}").json["data"] == data


def test_minimal_agent_gets_defaults(api, models):
    data = api.post("/api/agents", json={"name": "tiny"}).json["data"]
    assert (data["temperature"], data["max_tokens"], data["status"]) == (0.2, 1024, "active")
    assert data["description"] is None and data["topics"] == []


def test_no_model_and_no_default_is_422(api):
    for model in api.get("/api/models?kind=chat").json["data"]:
        api.put(f"/api/models/{model['id']}", json={"is_default": False})
    res = api.post("/api/agents", json=agent_body())
    assert res.status_code == 422 and res.json["error"]["code"] == "no_default_model"


def test_explicit_chat_model(api, models):
    res = api.post("/api/agents", json=agent_body(model_id=models["gpt-like"]))
    assert res.status_code == 201 and res.json["data"]["model_id"] == models["gpt-like"]


def test_non_chat_model_is_422_naming_it(api, models):
    res = api.post("/api/agents", json=agent_body(model_id=models["local-minilm"]))
    assert res.status_code == 422
    error = res.json["error"]
    assert error["details"]["model_id"] == models["local-minilm"]
    assert models["local-minilm"] in error["message"] and "embedding" in error["message"]
    assert "model_id" in error["details"]["fields"]


def test_unknown_model_is_422(api, models):
    res = api.post("/api/agents", json=agent_body(model_id="model_doesnotexist"))
    assert res.status_code == 422 and "model_doesnotexist" in res.json["error"]["message"]


def test_unknown_tools_are_listed(api, models, api_tool_id):
    tools = [api_tool_id, "apitool_missing", "rag_notyet", "nonsense"]
    res = api.post("/api/agents", json=agent_body(tools=tools))
    assert res.status_code == 422
    assert res.json["error"]["details"] == {"unknown_tools": ["apitool_missing", "rag_notyet", "nonsense"]}


def test_existing_api_tool_is_accepted(api, models, api_tool_id):
    res = api.post("/api/agents", json=agent_body(tools=[api_tool_id]))
    assert res.status_code == 201, res.json
    assert res.json["data"]["tools"] == [api_tool_id]


def test_duplicate_tools_are_rejected(api, models, api_tool_id):
    res = api.post("/api/agents", json=agent_body(tools=[api_tool_id, api_tool_id]))
    assert res.status_code == 422
    assert res.json["error"]["details"] == {"duplicate_tools": [api_tool_id]}


def test_resolve_tools_returns_rows_in_order(app, api, models, api_tool_id):
    from app.models import ApiTool
    from app.services.agents import resolve_tools

    rows = resolve_tools([api_tool_id])
    assert [type(r) for r in rows] == [ApiTool] and rows[0].id == api_tool_id
    assert resolve_tools([]) == []


def test_duplicate_name_is_409(api, models):
    assert api.post("/api/agents", json=agent_body()).status_code == 201
    res = api.post("/api/agents", json=agent_body())
    assert res.status_code == 409 and res.json["error"]["code"] == "duplicate_name"
    other = api.post("/api/agents", json=agent_body(name="other")).json["data"]["id"]
    res = api.put(f"/api/agents/{other}", json={"name": "helpdesk"})
    assert res.status_code == 409 and res.json["error"]["code"] == "duplicate_name"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 200_001}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"status": "archived"}, "status"),
        ({"name": ""}, "name"),
        ({"topics": [""]}, "topics"),
        ({"tools": "apitool_x"}, "tools"),
        ({"extra": True}, "extra"),
    ],
)
def test_invalid_bodies_are_422(api, models, overrides, field):
    res = api.post("/api/agents", json=agent_body(**overrides))
    assert res.status_code == 422
    assert field in res.json["error"]["details"]["fields"]


def test_update_changes_only_sent_fields(api, models, api_tool_id):
    agent = api.post("/api/agents", json=agent_body()).json["data"]
    res = api.put(f"/api/agents/{agent['id']}", json={"status": "draft", "tools": [api_tool_id]})
    assert res.status_code == 200, res.json
    data = res.json["data"]
    assert data["status"] == "draft" and data["tools"] == [api_tool_id]
    assert data["system_prompt"] == agent["system_prompt"] and data["temperature"] == 0.5
    assert data["model_id"] == agent["model_id"]
    res = api.put(f"/api/agents/{agent['id']}", json={"model_id": models["local-minilm"]})
    assert res.status_code == 422
    res = api.put(f"/api/agents/{agent['id']}", json={"tools": ["apitool_gone"]})
    assert res.status_code == 422 and res.json["error"]["details"] == {"unknown_tools": ["apitool_gone"]}
    res = api.put(f"/api/agents/{agent['id']}", json={"model_id": models["gpt-like"], "tools": []})
    assert res.status_code == 200 and res.json["data"]["model_id"] == models["gpt-like"]


def test_list_filters_by_status_and_sorts(api, models):
    api.post("/api/agents", json=agent_body(name="beta"))
    api.post("/api/agents", json=agent_body(name="alpha", status="draft"))
    api.post("/api/agents", json=agent_body(name="gamma", status="inactive"))
    res = api.get("/api/agents?sort=name&order=asc")
    assert [a["name"] for a in res.json["data"]] == ["alpha", "beta", "gamma"]
    assert res.json["pagination"] == {"page": 1, "limit": 20, "total": 3, "next_cursor": None}
    assert [a["name"] for a in api.get("/api/agents?status=draft").json["data"]] == ["alpha"]
    assert api.get("/api/agents?sort=temperature").status_code == 422
    assert api.get("/api/agents?status=archived").status_code == 422
    page = api.get("/api/agents?sort=updated_at&order=desc&limit=2&page=2").json
    assert len(page["data"]) == 1 and page["pagination"]["total"] == 3


def test_viewer_reads_operator_writes(api, models, make_key):
    viewer, operator = make_key("viewer"), make_key("operator")
    res = api.post("/api/agents", json=agent_body(), key=viewer)
    assert res.status_code == 403 and res.json["error"]["code"] == "insufficient_role"
    res = api.post("/api/agents", json=agent_body(), key=operator)
    assert res.status_code == 201
    agent_id = res.json["data"]["id"]
    assert api.get("/api/agents", key=viewer).status_code == 200
    assert api.get(f"/api/agents/{agent_id}", key=viewer).status_code == 200
    assert api.put(f"/api/agents/{agent_id}", json={"status": "draft"}, key=viewer).status_code == 403
    assert api.delete(f"/api/agents/{agent_id}", key=viewer).status_code == 403
    assert api.put(f"/api/agents/{agent_id}", json={"status": "draft"}, key=operator).status_code == 200
    assert api.delete(f"/api/agents/{agent_id}", key=operator).status_code == 200


def test_no_key_is_401(client):
    assert client.get("/api/agents").status_code == 401


def test_delete_and_404(api, models):
    agent_id = api.post("/api/agents", json=agent_body()).json["data"]["id"]
    res = api.delete(f"/api/agents/{agent_id}")
    assert res.status_code == 200 and res.json == {"success": True, "message": "agent deleted"}
    res = api.get(f"/api/agents/{agent_id}")
    assert res.status_code == 404 and res.json["error"]["code"] == "not_found"
    assert api.put(f"/api/agents/{agent_id}", json={"status": "draft"}).status_code == 404
    assert api.delete(f"/api/agents/{agent_id}").status_code == 404


def test_routes_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").json["paths"]
    assert {"/api/agents", "/api/agents/{agent_id}", "/api/api-tools", "/api/api-tools/{tool_id}",
            "/api/api-tools/{tool_id}/test"} <= set(paths)
    assert paths["/api/agents"]["post"]["x-required-role"] == "operator"
    assert paths["/api/agents"]["get"]["summary"].startswith("List agents")
