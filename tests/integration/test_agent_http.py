"""Agents over real HTTP under gunicorn (`magnet serve`): the app contract streamed through a socket, and a
client that hangs up mid-turn. The provider is the fake LLM server, on 127.0.0.1 in this process."""
import json
import re

import pytest
import requests

from tests.app.conftest import sse_events
from tests.conftest import wait_for
from tests.integration.test_serve import served  # noqa: F401 - the fixture
from tests.support.fake_llm import FakeLLM, Reply, Sleep


def _admin(output: str) -> dict:
    return {"X-API-Key": re.search(r"Admin API key: (magnet_ak_\S+)", output).group(1)}


@pytest.mark.integration
def test_the_demo_agent_streams_over_http_and_a_hang_up_still_saves_the_turn(served):  # noqa: F811
    base, output, _ = served
    admin = _admin(output)
    agents = requests.get(f"{base}/api/agents", headers=admin, timeout=10).json()["data"]
    demo = next(a for a in agents if a["name"] == "demo-assistant")
    integration = requests.post(f"{base}/api/integrations", headers=admin, timeout=10,
                                json={"name": "http-test", "agent_id": demo["id"]}).json()["data"]
    app_key = {"Authorization": f"Bearer {integration['key']}"}

    with requests.post(f"{base}/api/v1/messages", headers=app_key, stream=True, timeout=60,
                       json={"content": "Which role can create API keys?", "stream": True}) as res:
        assert res.status_code == 200 and res.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events("\n".join(res.iter_lines(decode_unicode=True)))
    names = [e["event"] for e in events]
    assert names[:2] == ["session.created", "message.started"] and names[-2:] == ["message.completed", "[DONE]"]
    completed = events[-2]
    assert "admin" in completed["content"] and completed["citations"][0]["source"].endswith("api-keys-and-roles.md")

    with FakeLLM() as llm:
        model = requests.post(f"{base}/api/models", headers=admin, timeout=10, json={
            "name": "slow", "provider": "openai_compatible", "model_id": "fake-model", "kind": "chat",
            "endpoint": llm.base_url}).json()["data"]
        requests.put(f"{base}/api/agents/{demo['id']}", headers=admin, json={"model_id": model["id"], "tools": []},
                     timeout=10)
        llm.script(Sleep(2.0, then=Reply("Finished after the client left.")))
        res = requests.post(f"{base}/api/v1/messages", headers=app_key, stream=True, timeout=60,
                            json={"content": "Take your time", "stream": True})
        lines = res.iter_lines(decode_unicode=True)
        started = next(line for line in lines if line.startswith("data: ") and "message.started" in line)
        conversation_id = json.loads(started[6:])["conversation_id"]
        res.close()  # hang up while the model is still answering

        def last_message():
            detail = requests.get(f"{base}/api/conversations/{conversation_id}", headers=admin, timeout=10)
            return detail.json()["data"]["messages"][-1]

        saved = wait_for(last_message, lambda m: m["role"] == "assistant", timeout=30)
    assert saved["content"] == "Finished after the client left." and saved["status"] == "completed"
