"""`magnet seed` makes a working demo: the sample docs synced, a RAG tool and an agent that answer from them,
and `magnet serve` prints curls that really work against it."""
import json
import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Agent, KnowledgeSource, LlmModel, RagTool, SyncRun
from app.services import seed


def _count(model, name):
    return db.session.execute(select(func.count()).select_from(model).where(model.name == name)).scalar_one()


@pytest.fixture
def demo(app):
    """The seeded demo, synced (inline, by the seed itself)."""
    lines = seed.seed_demo_data()
    tool, agent = seed.demo_objects()
    return {"lines": lines, "tool": tool, "agent": agent}


def test_the_sample_docs_are_small_real_documents():
    files = sorted(p for p in seed.samples_dir().iterdir() if p.is_file())
    assert 4 <= len(files) <= 6
    assert {p.suffix for p in files} <= {".md", ".txt"}
    assert sum(p.stat().st_size for p in files) < 30_000  # the first sync takes seconds on a small CPU


def test_seeding_twice_creates_the_demo_once_and_syncs_it_once(app, demo):
    lines = demo["lines"]
    assert any(line.startswith("knowledge source: demo-docs") for line in lines)
    assert any(line.startswith("RAG tool: demo-docs") for line in lines)
    assert any(line.startswith("agent: demo-assistant") for line in lines)
    assert any("demo-docs: sync completed" in line for line in lines), lines

    again = seed.seed_demo_data()
    assert again == ["built-in models: local-minilm (embedding), local-extractive (chat)"]  # nothing new, no sync
    for model, name in ((KnowledgeSource, "demo-docs"), (RagTool, "demo-docs"), (Agent, "demo-assistant")):
        assert _count(model, name) == 1
    assert db.session.execute(select(func.count()).select_from(SyncRun)).scalar_one() == 1

    source = db.session.execute(select(KnowledgeSource).where(KnowledgeSource.name == "demo-docs")).scalar_one()
    assert source.type == "directory" and source.configuration["path"] == str(seed.samples_dir())
    assert source.last_sync_status == "completed"
    tool, agent = demo["tool"], demo["agent"]
    local = db.session.execute(select(LlmModel).where(LlmModel.name == "local-extractive")).scalar_one()
    assert tool.answer_mode == "extractive" and tool.knowledge_source_ids == [source.id]
    assert agent.model_id == local.id and agent.tools == [tool.id]


def test_seeding_never_overwrites_what_a_user_changed(api, demo):
    tool, agent = demo["tool"], demo["agent"]
    assert api.put(f"/api/rag-tools/{tool.id}", json={"top_k": 2, "description": "mine"}).status_code == 200
    assert api.put(f"/api/agents/{agent.id}", json={"system_prompt": "Be brief."}).status_code == 200
    seed.seed_demo_data()
    db.session.expire_all()
    tool, agent = seed.demo_objects()
    assert tool.retrieval["top_k"] == 2 and tool.description == "mine"
    assert agent.system_prompt == "Be brief."


def test_the_demo_rag_tool_answers_from_the_right_sample(api, demo):
    res = api.post(f"/api/rag-tools/{demo['tool'].id}/query", json={"query": "Which role can create API keys?"})
    assert res.status_code == 200, res.json
    data = res.json["data"]
    assert "admin" in data["answer"]
    assert data["citations"][0]["source"] == "api-keys-and-roles.md"

    other = api.post(f"/api/rag-tools/{demo['tool'].id}/query", json={"query": "What is the default chunk size?"})
    assert "200 tokens" in other.json["data"]["answer"]
    assert other.json["data"]["citations"][0]["source"] == "how-syncing-works.md"


def test_the_demo_agent_answers_a_conversation_with_a_citation(api, demo):
    conversation = api.post("/api/conversations", json={"agent_id": demo["agent"].id})
    assert conversation.status_code == 201, conversation.json
    message = api.post(f"/api/conversations/{conversation.json['data']['id']}/messages",
                       json={"message": "How does a sync find changed documents?"})
    assert message.status_code == 200, message.json
    answer = message.json["data"]
    assert answer["status"] == "completed" and answer["no_answer"] is False
    assert "hash" in answer["content"]
    assert answer["citations"][0]["source"] == "how-syncing-works.md"


def test_serve_prints_curls_that_work(api, demo):
    """Replay the printed commands (method, path, body) with the test client: the ids, paths and bodies."""
    from app.cli import _demo_curls

    key = api.key
    lines = _demo_curls("http://127.0.0.1:5000", key)
    assert len(lines) == 5 and "not ready" not in lines[0]
    calls = [re.search(r"-H 'X-API-Key: (\S+)'.* -d '(.+?)' http://127\.0\.0\.1:5000(\S+)", line)
             for line in lines if "curl" in line]
    assert [c.group(1) for c in calls] == [key] * 3

    query = api.post(calls[0].group(3), json=json.loads(calls[0].group(2)))
    assert query.status_code == 200 and query.json["data"]["citations"], query.json
    opened = api.post(calls[1].group(3), json=json.loads(calls[1].group(2)))
    assert opened.status_code == 201
    # what the printed `grep -oE 'conv_[0-9a-z]{24}' | head -1` extracts from the raw response
    assert "grep -oE 'conv_[0-9a-z]{24}' | head -1" in lines[3]
    conv = re.findall(r"conv_[0-9a-z]{24}", opened.get_data(as_text=True))[0]
    assert conv == opened.json["data"]["id"]
    answer = api.post(calls[2].group(3).replace("$conv", conv), json=json.loads(calls[2].group(2)))
    assert answer.status_code == 200 and answer.json["data"]["citations"], answer.json


def test_serve_says_when_the_demo_is_not_synced(app, monkeypatch):
    from app.cli import _demo_curls

    monkeypatch.setattr(seed, "_sync_inline", lambda source, say: None)
    seed.seed_demo_data()
    assert "[not ready: its documents are not synced yet" in _demo_curls("http://h:1", "k")[0]


def test_without_the_samples_folder_the_demo_is_skipped_with_a_reason(app, monkeypatch, tmp_path):
    monkeypatch.setattr(seed, "samples_dir", lambda: tmp_path / "missing")
    lines = seed.seed_demo_data()
    assert any(line.startswith("demo knowledge base: skipped") and "does not exist" in line for line in lines)
    assert seed.demo_objects() == (None, None)
    assert _count(KnowledgeSource, "demo-docs") == 0


def test_a_sync_left_queued_by_an_interrupted_seed_is_run_by_the_next_one(app, monkeypatch):
    monkeypatch.setattr(seed, "_sync_inline", lambda source, say: None)
    seed.seed_demo_data()
    monkeypatch.undo()
    source = db.session.execute(select(KnowledgeSource).where(KnowledgeSource.name == "demo-docs")).scalar_one()
    db.session.add(SyncRun(source_id=source.id, trigger="seed"))  # queued; its process died before running it
    db.session.commit()
    lines = seed.seed_demo_data()
    assert any("demo-docs: sync completed" in line for line in lines), lines
    assert db.session.execute(select(func.count()).select_from(SyncRun)).scalar_one() == 1
