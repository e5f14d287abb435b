"""RAG tools, retrieval tools and the Dify endpoint over a really synced source, real HTTP to a fake LLM."""
import json

import pytest

from tests.conftest import wait_for
from tests.support.fake_llm import Reply, Status

pytestmark = pytest.mark.slow

def _ready(api, path, body):
    res = api.post(path, json=body)
    assert res.status_code == 202, res.json
    tool = res.json["data"]
    base = path
    state = wait_for(lambda: api.get(f"{base}/{tool['id']}").json["data"]["status"]["status"],
                     lambda s: s != "building")
    assert state == "ready"
    return tool


def _chat_model(api, llm, **pricing):
    return api.post("/api/models", json={
        "name": "fake-gpt", "provider": "openai_compatible", "model_id": "fake-model", "kind": "chat",
        "endpoint": llm.base_url, "api_key": "sk-test-secret",
        "pricing": pricing or {"input_per_1k": 0.5, "output_per_1k": 1.5}}).json["data"]


def test_extractive_answer_with_citations_and_trace(api, synced):
    tool = _ready(api, "/api/rag-tools", {"name": "help", "knowledge_source_id": synced["id"], "top_k": 2})
    res = api.post(f"/api/rag-tools/{tool['id']}/query", json={"query": "How long do refunds take?"})
    assert res.status_code == 200, res.json
    data = res.json["data"]
    assert data["query"] == "How long do refunds take?"
    assert len(data["results"]) <= 2
    top = data["results"][0]
    assert top["metadata"]["source"] == "faq.txt" and "fourteen days" in top["content"]
    assert set(top["scores"]) >= {"dense", "lexical", "fused"}
    assert "fourteen days" in data["answer"] and "[1]" in data["answer"]
    assert data["citations"][0]["source"] == "faq.txt" and data["citations"][0]["result"] == 0
    assert data["usage"]["cost"] == 0 and data["latency_ms"]["total"] > 0

    trace = api.get(f"/api/traces/{data['trace_id']}").json["data"]
    assert [span["stage"] for span in trace["spans"]] == ["retrieval", "generation"]
    assert trace["spans"][0]["output"]["hits"][0]["chunk_id"] == top["metadata"]["chunk_id"]


def test_generated_answer_is_grounded_metered_and_cited(app, api, synced, llm):
    from app.extensions import db
    from app.models import UsageRecord

    model = _chat_model(api, llm)
    tool = _ready(api, "/api/rag-tools", {"name": "gen", "knowledge_source_ids": [synced["id"]],
                                          "model_id": model["id"], "top_k": 3})
    llm.script(Reply("Refunds take fourteen days [1].", prompt_tokens=100, completion_tokens=10))
    data = api.post(f"/api/rag-tools/{tool['id']}/query", json={"query": "refund delay"}).json["data"]
    assert data["answer"] == "Refunds take fourteen days [1]."
    assert data["citations"][0]["source"] == data["results"][0]["metadata"]["source"]
    # 100 prompt tokens * 0.5/1k + 10 completion tokens * 1.5/1k = 0.065
    assert data["usage"] == {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110, "cost": pytest.approx(0.065)}
    prompt = llm.posts[0].body["messages"][-1]["content"]
    assert "refund delay" in prompt and "fourteen days" in prompt and "[1]" in prompt
    assert llm.posts[0].headers["authorization"] == "Bearer sk-test-secret"

    rows = db.session.execute(db.select(UsageRecord).where(
        UsageRecord.entity_id == tool["id"], UsageRecord.operation == "chat")).scalars().all()  # not the query embedding
    assert len(rows) == 1 and rows[0].cost == pytest.approx(0.065) and rows[0].api_key_id is not None


def test_nothing_relevant_is_an_explicit_no_answer_without_calling_the_model(api, synced, llm):
    model = _chat_model(api, llm)
    tool = _ready(api, "/api/rag-tools", {"name": "strict", "knowledge_source_id": synced["id"],
                                          "model_id": model["id"], "score_threshold": 0.5})
    data = api.post(f"/api/rag-tools/{tool['id']}/query",
                    json={"query": "Which volcano erupted in Iceland in 2010?"}).json["data"]
    assert data["answer"] is None and data["results"] == []
    assert data["no_answer_reason"] == "no_relevant_passages"
    assert llm.posts == []


def test_streaming_events(api, synced, llm):
    model = _chat_model(api, llm)
    tool = _ready(api, "/api/rag-tools", {"name": "streamy", "knowledge_source_id": synced["id"], "model_id": model["id"]})
    llm.script(Reply("Parcels ship within three working days [1]."))
    res = api.post(f"/api/rag-tools/{tool['id']}/query", json={"query": "shipping time", "stream": True})
    assert res.status_code == 200 and res.mimetype == "text/event-stream"
    lines = [line[6:] for line in res.get_data(as_text=True).splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    events = [json.loads(line) for line in lines[:-1]]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "retrieval.completed" and kinds[-1] == "message.completed"
    assert set(kinds[1:-1]) == {"text.chunk"}
    assert "".join(e["delta"] for e in events if e["event"] == "text.chunk") == "Parcels ship within three working days [1]."
    assert events[-1]["answer"] == "Parcels ship within three working days [1]."


def test_provider_failure_is_502_and_a_stream_error_event(api, synced, llm):
    model = _chat_model(api, llm)
    tool = _ready(api, "/api/rag-tools", {"name": "flaky", "knowledge_source_id": synced["id"], "model_id": model["id"]})
    llm.script(Status(500), Status(500), Status(500))
    res = api.post(f"/api/rag-tools/{tool['id']}/query", json={"query": "refunds"})
    assert res.status_code == 502 and res.json["error"]["code"] == "agent_error"
    assert "sk-test-secret" not in res.get_data(as_text=True)
    llm.script(Status(500), Status(500), Status(500))
    res = api.post(f"/api/rag-tools/{tool['id']}/query", json={"query": "refunds", "stream": True})
    body = res.get_data(as_text=True)
    assert '"event": "error"' in body and body.rstrip().endswith("data: [DONE]")


def test_filters_and_bad_filters(api, synced):
    tool = _ready(api, "/api/retrieval-tools", {"name": "finder", "knowledge_source_id": synced["id"], "top_k": 5})
    docs = {d["external_id"]: d["id"] for d in api.get(f"/api/knowledge-sources/{synced['id']}/documents").json["data"]}
    res = api.post(f"/api/retrieval-tools/{tool['id']}/search",
                   json={"query": "days", "filters": {"document_id": {"$eq": docs["security.md"]}}})
    assert res.status_code == 200
    assert {r["metadata"]["source"] for r in res.json["data"]["results"]} == {"security.md"}
    res = api.post(f"/api/retrieval-tools/{tool['id']}/search", json={"query": "days", "filters": {"page": {"$regex": "x"}}})
    assert res.status_code == 422 and "$regex" in res.json["error"]["message"]


def test_dify_external_knowledge_api(api, synced):
    tool = _ready(api, "/api/retrieval-tools", {"name": "dify-kb", "knowledge_source_id": synced["id"]})
    res = api.post("/api/dify/retrieval", json={
        "knowledge_id": tool["id"], "query": "express delivery price",
        "retrieval_setting": {"top_k": 2, "score_threshold": 0.0}})
    assert res.status_code == 200, res.json
    records = res.json["records"]
    assert 1 <= len(records) <= 2
    assert "Express delivery" in records[0]["content"] and records[0]["title"]
    assert api.post("/api/dify/retrieval", json={"knowledge_id": "ret_nope", "query": "x"}).status_code == 404


def test_tool_validation(api, synced):
    assert api.post("/api/rag-tools", json={"name": "x"}).status_code == 422
    res = api.post("/api/rag-tools", json={"name": "x", "knowledge_source_id": "ks_missing"})
    assert res.status_code == 422 and res.json["error"]["details"]["unknown_sources"] == ["ks_missing"]
    res = api.post("/api/rag-tools", json={"name": "x", "knowledge_source_id": synced["id"], "chunk_size": 4000})
    assert res.status_code == 422 and "chunk_size" in res.json["error"]["details"]["fields"]
    _ready(api, "/api/rag-tools", {"name": "dup", "knowledge_source_id": synced["id"]})
    assert api.post("/api/rag-tools", json={"name": "dup", "knowledge_source_id": synced["id"]}).status_code == 409
