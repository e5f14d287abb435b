"""Fixtures shared by the API tests that need a really synced knowledge base and a fake LLM server."""
import pytest

from tests.conftest import wait_for
from tests.support.fake_llm import FakeLLM

DOCS = {
    "faq.txt": "Refunds are processed within fourteen days of the request. Contact billing for help.",
    "shipping.md": "# Shipping\n\nParcels ship within three working days. Express delivery costs ten euros.",
    "security.md": "# Security\n\nPasswords must be rotated every ninety days. Use the VPN outside the office.",
}


@pytest.fixture
def llm():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def synced(api, worker, tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    source = api.post("/api/knowledge-sources", json={
        "name": "kb", "type": "directory", "configuration": {"path": str(folder)}}).json["data"]
    run = api.post(f"/api/knowledge-sources/{source['id']}/sync").json["data"]
    done = wait_for(lambda: api.get(f"/api/knowledge-sources/{source['id']}/syncs/{run['id']}").json["data"],
                    lambda r: r["status"] not in ("queued", "running"))
    assert done["status"] == "completed", done
    return source


@pytest.fixture
def chat_model(api, llm):
    """An OpenAI-compatible chat model served by the fake LLM, priced 1.0 / 2.0 per 1k tokens."""
    res = api.post("/api/models", json={
        "name": "fake-gpt", "provider": "openai_compatible", "model_id": "fake-model", "kind": "chat",
        "endpoint": llm.base_url, "api_key": "sk-test", "context_window": 16000,
        "pricing": {"input_per_1k": 1.0, "output_per_1k": 2.0}})
    assert res.status_code == 201, res.json
    return res.json["data"]


@pytest.fixture
def kb_tool(api, synced):
    """A ready RAG tool over the synced folder that answers extractively (no model call of its own)."""
    res = api.post("/api/rag-tools", json={"name": "kb", "knowledge_source_ids": [synced["id"]],
                                           "answer_mode": "extractive", "top_k": 3})
    assert res.status_code == 202, res.json
    tool = res.json["data"]
    state = wait_for(lambda: api.get(f"/api/rag-tools/{tool['id']}").json["data"]["status"]["status"],
                     lambda s: s != "building")
    assert state == "ready"
    return tool


def sse_events(body: str) -> list[dict]:
    """The JSON `data:` payloads of an SSE body, in order; [DONE] as {"event": "[DONE]"}."""
    import json

    events = []
    for line in body.splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append({"event": "[DONE]"} if data == "[DONE]" else json.loads(data))
    return events
