"""The platform API where its seed contract names things its own way: message timestamps, usage keyed by
model and entity, every resource counted in /api/status, and knowledge-source status documented."""
import pytest

from tests.support.fake_llm import Reply


def _turn(api, llm, chat_model, **reply):
    agent = api.post("/api/agents", json={"name": "a", "model_id": chat_model["id"]}).json["data"]
    conversation = api.post("/api/conversations", json={"agent_id": agent["id"]}).json["data"]
    llm.script(Reply("Hello.", **reply))
    res = api.post(f"/api/conversations/{conversation['id']}/messages", json={"message": "hi"})
    assert res.status_code == 200, res.json
    return agent, conversation


def test_conversation_messages_carry_timestamp(api, llm, chat_model):
    _, conversation = _turn(api, llm, chat_model)
    for path in (f"/api/conversations/{conversation['id']}", f"/api/conversations/{conversation['id']}/messages"):
        data = api.get(path).json["data"]
        messages = data["messages"] if isinstance(data, dict) else data
        assert [m["role"] for m in messages] in (["user", "assistant"], ["assistant", "user"])
        for message in messages:
            assert message["timestamp"] == message["created_at"] and message["timestamp"].endswith("Z")


def test_usage_by_model_and_entity_in_the_keyed_form(api, llm, chat_model):
    agent, _ = _turn(api, llm, chat_model, prompt_tokens=30, completion_tokens=10)
    listed = api.get("/api/usage/stats").json["data"]
    keyed = api.get("/api/usage/stats", query_string={"shape": "keyed"}).json["data"]
    assert keyed["total_tokens"] == listed["total_tokens"] == 40
    assert set(keyed["by_model"]) == {"fake-gpt"}
    assert keyed["by_model"]["fake-gpt"] == listed["by_model"][0]
    assert keyed["by_model"]["fake-gpt"]["cost"] == pytest.approx(0.05)
    assert keyed["by_entity"] == {agent["id"]: listed["by_entity"][0]}
    assert keyed["by_operation"]["chat"]["total_tokens"] == 40
    bad = api.get("/api/usage/stats", query_string={"shape": "table"})
    assert bad.status_code == 422 and "shape" in bad.json["error"]["details"]["fields"]


def test_status_counts_every_resource(api, llm, chat_model):
    agent, _ = _turn(api, llm, chat_model)
    api.post("/api/integrations", json={"name": "app", "agent_id": agent["id"]})
    api.post("/api/evaluations", json={"name": "e", "type": "agent", "target_id": agent["id"],
                                       "metrics": ["token_f1"], "test_cases": [{"input": "q", "expected_output": "a"}]})
    counts = api.get("/api/status").json["data"]["counts"]
    assert counts["conversations"] == 1 and counts["messages"] == 2
    assert counts["integrations"] == 1 and counts["evaluations"] == 1 and counts["evaluation_test_cases"] == 1
    assert counts["agents"] == 1 and counts["evaluation_runs"] == 0
    assert {"knowledge_indexes", "traces", "usage_records", "sync_runs"} <= set(counts)


def test_knowledge_source_status_documents_its_meaning(client):
    spec = client.get("/api/openapi.json").json
    status = spec["components"]["schemas"]["Source"]["properties"]["status"]
    assert status["enum"] == ["idle", "syncing", "error"]
    assert "active" in status["description"] and "last_sync_status" in status["description"]
