"""Deleting a knowledge source that tools search: 409 in_use naming them, or ?force=true deleting them too."""
from tests.app.test_rag_api import _ready


def test_a_source_searched_by_tools_is_not_deleted_under_them(api, synced):
    rag = _ready(api, "/api/rag-tools", {"name": "answers", "knowledge_source_id": synced["id"]})
    finder = _ready(api, "/api/retrieval-tools", {"name": "finder", "knowledge_source_id": synced["id"]})
    path = f"/api/knowledge-sources/{synced['id']}"

    refused = api.delete(path)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "in_use", refused.json
    assert {t["id"] for t in refused.json["error"]["details"]["tools"]} == {rag["id"], finder["id"]}
    assert "answers" in refused.json["error"]["message"] and "force=true" in refused.json["error"]["message"]
    assert api.get(path).status_code == 200
    assert api.get(f"/api/rag-tools/{rag['id']}").json["data"]["status"]["status"] == "ready"

    # An agent calling one of the tools keeps it (and the source) in place even with force.
    agent = api.post("/api/agents", json={"name": "helper", "tools": [rag["id"]]}).json["data"]
    still = api.delete(path, query_string={"force": "true"})
    assert still.status_code == 409 and still.json["error"]["details"]["agents"] == ["helper"]
    assert api.get(path).status_code == 200 and api.get(f"/api/retrieval-tools/{finder['id']}").status_code == 200

    api.put(f"/api/agents/{agent['id']}", json={"tools": []})
    forced = api.delete(path, query_string={"force": "true"})
    assert forced.status_code == 200, forced.json
    assert api.get(path).status_code == 404
    assert api.get(f"/api/rag-tools/{rag['id']}").status_code == 404
    assert api.get(f"/api/retrieval-tools/{finder['id']}").status_code == 404


def test_a_source_no_tool_searches_is_deleted_as_before(api, synced):
    other = api.post("/api/knowledge-sources", json={"name": "other", "type": "file"}).json["data"]
    _ready(api, "/api/retrieval-tools", {"name": "elsewhere", "knowledge_source_id": synced["id"]})
    assert api.delete(f"/api/knowledge-sources/{other['id']}").status_code == 200
    bad = api.delete(f"/api/knowledge-sources/{synced['id']}", query_string={"force": "maybe"})
    assert bad.status_code == 422 and "force" in bad.json["error"]["details"]["fields"]
