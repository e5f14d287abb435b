"""Models are referenced as the platform contract does: by Magnet id, by unique name, or by the provider's
model id when one model of the needed kind serves it; the contract's example bodies are accepted."""
from app.services.llm_models import ensure_builtin_models


def _fields_error(res, field):
    assert res.status_code == 422, res.json
    assert set(res.json["error"]["details"]["fields"]) == {field}, res.json
    return res.json["error"]


def test_the_contracts_example_bodies_are_accepted_as_written(api, synced):
    ensure_builtin_models()
    model = api.post("/api/models", json={"name": "gpt-4o-mini", "provider": "openai", "model_id": "gpt-4o-mini",
                                          "api_key": "sk-example"})
    assert model.status_code == 201, model.json
    assert model.json["data"]["kind"] == "chat"  # no kind: inferred from the model id
    embedder = api.post("/api/models", json={"name": "small-embedder", "provider": "openai",
                                             "model_id": "text-embedding-3-small"}).json["data"]
    assert embedder["kind"] == "embedding"
    reranker = api.post("/api/models", json={"name": "rr", "provider": "openai_compatible",
                                             "model_id": "bge-reranker-base",
                                             "endpoint": "http://127.0.0.1:9/v1"}).json["data"]
    assert reranker["kind"] == "rerank"

    tool = api.post("/api/rag-tools", json={"name": "HR Policies", "knowledge_source_ids": [synced["id"]],
                                            "embedding_model": "local-minilm", "top_k": 5})
    assert tool.status_code == 202, tool.json
    minilm = next(m for m in api.get("/api/models").json["data"] if m["name"] == "local-minilm")
    assert tool.json["data"]["embedding_model"] == minilm["id"]

    agent = api.post("/api/agents", json={"name": "Support Agent", "model_id": "gpt-4o-mini",
                                          "system_prompt": "You answer HR questions.",
                                          "tools": [tool.json["data"]["id"]]})
    assert agent.status_code == 201, agent.json
    assert agent.json["data"]["model_id"] == model.json["data"]["id"]
    # Updates take references too.
    renamed = api.put(f"/api/agents/{agent.json['data']['id']}", json={"model_id": "local-extractive"}).json["data"]
    assert renamed["model_id"] != model.json["data"]["id"] and renamed["model_id"].startswith("model_")


def test_a_provider_model_id_served_by_several_models_is_ambiguous(api, synced):
    ensure_builtin_models()
    ids = {}
    for name in ("mini-eu", "mini-us"):
        res = api.post("/api/models", json={"name": name, "provider": "openai_compatible", "kind": "chat",
                                            "model_id": "gpt-4o-mini", "endpoint": "http://127.0.0.1:9/v1"})
        ids[name] = res.json["data"]["id"]
    error = _fields_error(api.post("/api/agents", json={"name": "a", "model_id": "gpt-4o-mini"}), "model_id")
    assert error["code"] == "ambiguous_model"
    assert sorted(c["name"] for c in error["details"]["candidates"]) == ["mini-eu", "mini-us"]
    assert {c["id"] for c in error["details"]["candidates"]} == set(ids.values())
    # A unique name or id is never ambiguous.
    assert api.post("/api/agents", json={"name": "a", "model_id": "mini-eu"}).json["data"]["model_id"] == ids["mini-eu"]
    assert api.post("/api/agents", json={"name": "b", "model_id": ids["mini-us"]}).json["data"]["model_id"] == \
        ids["mini-us"]
    # A chat model is not an embedding model, whatever it is called.
    _fields_error(api.post("/api/rag-tools", json={"name": "t", "knowledge_source_ids": [synced["id"]],
                                                   "embedding_model": "mini-eu"}), "embedding_model")


def test_a_bad_embedding_model_is_reported_under_the_field_sent(api, synced):
    ensure_builtin_models()
    for path in ("/api/rag-tools", "/api/retrieval-tools"):
        res = api.post(path, json={"name": "t", "knowledge_source_ids": [synced["id"]],
                                   "embedding_model": "no-such-model"})
        error = _fields_error(res, "embedding_model")
        assert "no-such-model" in error["message"]
    # The index API's own field keeps its name, and takes a model name too.
    res = api.post(f"/api/knowledge-sources/{synced['id']}/indexes", json={"embedding_model_id": "nope"})
    _fields_error(res, "embedding_model_id")
    res = api.post(f"/api/knowledge-sources/{synced['id']}/indexes",
                   json={"embedding_model_id": "local-minilm", "chunk_size": 128, "chunk_overlap": 16})
    assert res.status_code in (201, 202), res.json
