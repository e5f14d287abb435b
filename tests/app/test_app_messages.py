"""`POST /api/v1/messages`: the app-integration contract, end to end over the real stack.

Also: the usage endpoints add up exactly to the ledger the turns wrote, and agents can be evaluated.
"""
import base64
import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Conversation, Message, UsageRecord
from app.services import app_messages
from tests.app.conftest import sse_events
from tests.conftest import wait_for
from tests.support.fake_llm import Reply, Sleep, Status, ToolCallReply


def _integration(api, agent, **body):
    res = api.post("/api/integrations", json={"name": f"app-{agent['name']}", "agent_id": agent["id"], **body})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _agent(api, model, tools=(), **body):
    res = api.post("/api/agents", json={"name": f"agent-{model['name']}", "model_id": model["id"],
                                        "tools": [t["id"] for t in tools], **body})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _send(client, key, **body):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/api/v1/messages", json=body, headers=headers)


def _error(res, status, code):
    assert res.status_code == status, (res.status_code, res.json)
    assert set(res.json) == {"error"} and set(res.json["error"]) == {"code", "message"}
    assert res.json["error"]["code"] == code and res.json["error"]["message"]


def test_a_session_is_a_multi_turn_tool_using_conversation(api, client, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    key = _integration(api, agent)["key"]
    assert key.startswith("magnet_sk_")
    llm.script(ToolCallReply("query", {"query": "refund time"}, prompt_tokens=40, completion_tokens=6),
               Reply("Fourteen days [1].", prompt_tokens=90, completion_tokens=4),
               Reply("Yes, fourteen.", prompt_tokens=60, completion_tokens=3))
    first = _send(client, key, content="How long do refunds take?")
    assert first.status_code == 200, first.json
    reply = first.json
    assert set(reply) == {"id", "message_id", "session_id", "conversation_id", "content", "citations", "tool_calls",
                          "attachments", "usage", "created_at"}
    assert reply["id"].startswith("msg_") and reply["conversation_id"].startswith("conv_")
    assert reply["content"] == "Fourteen days [1]." and reply["citations"][0]["source"] == "faq.txt"
    assert reply["tool_calls"][0]["name"] == "query" and reply["created_at"].endswith("Z")
    embedding = sum(r.prompt_tokens for r in _rows(reply["conversation_id"]) if r.operation == "embedding")
    assert reply["usage"] == {"prompt_tokens": 40 + 90 + embedding, "completion_tokens": 6 + 4}

    second = _send(client, key, content="Really?", session_id=reply["session_id"]).json
    assert second["conversation_id"] == reply["conversation_id"] and second["session_id"] == reply["session_id"]
    assert [m["content"] for m in llm.posts[-1].body["messages"][1:]] == [
        "How long do refunds take?", "Fourteen days [1].", "Really?"]
    llm.script(Reply("Hello!"))
    other = _send(client, key, content="Hello").json  # no session_id: a new conversation
    assert other["session_id"] != reply["session_id"] and other["conversation_id"] != reply["conversation_id"]
    assert [m["role"] for m in llm.posts[-1].body["messages"]] == ["system", "user"]


def _rows(conversation_id):
    db.session.expire_all()
    return db.session.execute(select(UsageRecord).where(UsageRecord.conversation_id == conversation_id)).scalars().all()


def test_streaming_sends_the_contract_events_by_verbosity(api, client, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    key = _integration(api, agent)["key"]
    llm.script(ToolCallReply("query", {"query": "shipping"}, text="Checking the shipping policy."),
               Reply("Parcels ship within three working days [1]."))
    res = _send(client, key, content="When do parcels ship?", stream=True, verbosity="full")
    assert res.status_code == 200 and res.mimetype == "text/event-stream"
    events = sse_events(res.get_data(as_text=True))
    names = [e["event"] for e in events]
    assert names[:2] == ["session.created", "message.started"] and names[-2:] == ["message.completed", "[DONE]"]
    assert {"tool.started", "tool.progress", "tool.completed", "thinking.chunk", "text.chunk"} <= set(names)
    session = events[0]["session_id"]
    completed = events[-2]
    assert completed["session_id"] == session and completed["content"] == "Parcels ship within three working days [1]."
    assert set(completed["usage"]) == {"prompt_tokens", "completion_tokens"}
    assert "".join(e["delta"] for e in events if e["event"] == "text.chunk") == completed["content"]

    llm.script(ToolCallReply("query", {"query": "express"}), Reply("Ten euros [1]."))
    minimal = sse_events(_send(client, key, content="Express cost?", session_id=session, stream=True,
                               verbosity="minimal").get_data(as_text=True))
    assert minimal[0] == {"event": "session.created", "session_id": session,
                          "conversation_id": events[0]["conversation_id"], "is_new": False}
    assert {e["event"] for e in minimal} == {"session.created", "message.started", "text.chunk",
                                             "message.completed", "[DONE]"}


def test_contract_errors(api, client, llm, chat_model, make_key):
    agent = _agent(api, chat_model, [], turn_timeout_seconds=1)
    integration = _integration(api, agent)
    key = integration["key"]
    _error(_send(client, None, content="hi"), 401, "invalid_api_key")
    _error(_send(client, "magnet_sk_wrong", content="hi"), 401, "invalid_api_key")
    _error(_send(client, make_key("admin"), content="hi"), 401, "invalid_api_key")  # a platform key is not one
    _error(client.post("/api/v1/messages", data="{", content_type="application/json",
                       headers={"Authorization": f"Bearer {key}"}), 400, "invalid_request")
    _error(_send(client, key), 400, "invalid_request")
    _error(_send(client, key, content=["not", "text"]), 400, "invalid_request")
    _error(_send(client, key, content="   "), 400, "invalid_request")
    _error(_send(client, key, content="hi", verbosity="chatty"), 400, "invalid_request")
    # An id of the form Magnet mints that this integration never held is refused (not someone's new session).
    _error(_send(client, key, content="hi", session_id="sess_0123456789abcdefghjkmnpq"), 400, "invalid_request")
    _error(_send(client, key, content="hi", attachments=[{"filename": "a.txt", "data": "not base64!"}]),
           400, "invalid_request")
    too_big = base64.b64encode(b"x" * (5 * 1024 * 1024 + 1)).decode()
    _error(_send(client, key, content="hi", attachments=[{"filename": "big.txt", "data": too_big}]),
           400, "invalid_request")
    assert llm.posts == [] and db.session.execute(select(Message)).first() is None  # nothing refused was kept

    llm.script(Status(400, "provider refused"))
    _error(_send(client, key, content="hi"), 502, "agent_error")
    llm.script(Sleep(5))
    _error(_send(client, key, content="hi"), 504, "timeout")

    api.put(f"/api/integrations/{integration['id']}", json={"is_active": False})
    _error(_send(client, key, content="hi"), 403, "integration_inactive")


def test_the_daily_credit_limit_stops_an_integration_that_spent_it(api, client, llm, chat_model):
    agent = _agent(api, chat_model)
    integration = _integration(api, agent, daily_credit_limit=0.05)
    key = integration["key"]
    # 30 prompt tokens * 1.0/1k + 10 completion * 2.0/1k = 0.05: the first call spends the whole limit.
    llm.script(Reply("one", prompt_tokens=30, completion_tokens=10))
    assert _send(client, key, content="first").status_code == 200
    assert api.get(f"/api/integrations/{integration['id']}").json["data"]["spent_today"] == pytest.approx(0.05)
    _error(_send(client, key, content="second"), 403, "usage_limit_exceeded")
    assert len(llm.posts) == 1
    api.put(f"/api/integrations/{integration['id']}", json={"daily_credit_limit": 1.0})
    llm.script(Reply("two", prompt_tokens=30, completion_tokens=10))
    assert _send(client, key, content="second").status_code == 200


def test_attachments_are_read_and_used_by_the_local_agent(api, client):
    agent = api.post("/api/agents", json={"name": "reader"}).json["data"]  # built-in local model, no tools
    key = _integration(api, agent)["key"]
    policy = b"Travel policy.\n\nHotel costs are reimbursed up to ninety euros per night. Taxis need a receipt."
    res = _send(client, key, content="How much is reimbursed for hotels?",
                attachments=[{"filename": "travel.txt", "content_type": "text/plain",
                              "data": base64.b64encode(policy).decode()}])
    assert res.status_code == 200, res.json
    reply = res.json
    assert reply["content"] == "Hotel costs are reimbursed up to ninety euros per night [1]."
    assert reply["citations"][0]["source"] == "travel.txt"
    assert reply["attachments"][0]["filename"] == "travel.txt" and reply["attachments"][0]["size_bytes"] == len(policy)
    # The file stays with the conversation: a later turn in the session can still quote it.
    later = _send(client, key, content="Do taxis need a receipt?", session_id=reply["session_id"]).json
    assert "receipt" in later["content"] and later["attachments"] == []
    detail = api.get(f"/api/conversations/{reply['conversation_id']}").json["data"]
    assert [a["filename"] for a in detail["attachments"]] == ["travel.txt"]


def test_usage_endpoints_add_up_exactly_to_the_ledger(api, client, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    key = _integration(api, agent)["key"]
    llm.script(ToolCallReply("query", {"query": "refunds"}, prompt_tokens=111, completion_tokens=7),
               Reply("Fourteen days [1].", prompt_tokens=222, completion_tokens=9),
               Reply("Three days.", prompt_tokens=333, completion_tokens=5))
    first = _send(client, key, content="Refunds?").json
    _send(client, key, content="Shipping?", session_id=first["session_id"])
    conversation_id = first["conversation_id"]
    rows = _rows(conversation_id)
    chat_cost = (111 + 222 + 333) * 1.0 / 1000 + (7 + 9 + 5) * 2.0 / 1000  # = 0.708

    stats = api.get("/api/usage/stats", query_string={"entity_type": "agent", "entity_id": agent["id"]}).json["data"]
    assert stats["total_tokens"] == 111 + 222 + 333 + 7 + 9 + 5
    assert stats["total_cost"] == pytest.approx(chat_cost)
    assert [m["model_ref"] for m in stats["by_model"]] == [chat_model["id"]]

    everything = api.get("/api/usage/stats", query_string={"conversation_id": conversation_id}).json["data"]
    assert everything["total_tokens"] == sum(r.prompt_tokens + r.completion_tokens for r in rows)
    assert everything["total_cost"] == pytest.approx(sum(r.cost for r in rows))
    assert sum(e["total_tokens"] for e in everything["by_entity"]) == everything["total_tokens"]
    assert {(e["entity_type"]) for e in everything["by_entity"]} == {"agent", "rag_tool"}
    messages = api.get(f"/api/conversations/{conversation_id}").json["data"]["messages"]
    answers = [m for m in messages if m["role"] == "assistant"]
    assert sum(m["usage"]["total_tokens"] for m in answers) == everything["total_tokens"]
    assert sum(m["usage"]["cost"] for m in answers) == pytest.approx(everything["total_cost"])

    costs = api.get("/api/usage/costs", query_string={"entity_type": "agent", "entity_id": agent["id"]}).json["data"]
    assert costs["series"][-1]["cost"] == pytest.approx(chat_cost) and costs["total_cost"] == pytest.approx(chat_cost)

    analytics = api.get("/api/analytics/conversations", query_string={"agent_id": agent["id"]}).json["data"]
    assert analytics["conversations"] == 1 and analytics["messages"] == 4
    assert analytics["tool_usage"][0]["name"] == "query" and analytics["tool_usage"][0]["calls"] == 1
    assert analytics["no_answer_rate"] == 0.0


def test_agents_can_be_evaluated(api, kb_tool, worker):
    agent = api.post("/api/agents", json={"name": "evaluated", "tools": [kb_tool["id"]]}).json["data"]
    res = api.post("/api/evaluations", json={
        "name": "agent suite", "type": "agent", "target_id": agent["id"], "metrics": ["token_f1"],
        "settings": {"concurrency": 1, "retries": 0},
        "test_cases": [{"input": "How long do refunds take?", "expected_output": "Refunds take fourteen days."}]})
    assert res.status_code == 201, res.json
    evaluation = res.json["data"]
    run = api.post(f"/api/evaluations/{evaluation['id']}/run").json["data"]
    done = wait_for(lambda: api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}").json["data"],
                    lambda r: r["status"] not in ("queued", "running"))
    assert done["status"] == "completed", done
    [result] = api.get(f"/api/evaluations/{evaluation['id']}/results").json["data"]["results"]
    assert result["answer"] == "Refunds are processed within fourteen days of the request [1]."
    # "refunds are processed within fourteen days of request 1" (9 tokens, article dropped) against
    # "refunds take fourteen days" (4): 3 shared -> P 3/9, R 3/4, F1 = 2 * (1/3) * (3/4) / (1/3 + 3/4) = 6/13
    assert result["scores"]["token_f1"] == pytest.approx(6 / 13)
    assert done["target_snapshot"]["agent"]["tools"] == [kb_tool["id"]]
    assert json.dumps(result).count("faq.txt") >= 1


@pytest.mark.parametrize("body", [
    {"content": "hi\u0000"},
    {"content": "hi", "session_id": "sess_\u0000"},
    {"content": "hi", "user_id": "user\u0000"},
    {"content": "hi", "attachments": [{"filename": "a\u0000.txt", "data": base64.b64encode(b"text").decode()}]},
])
def test_a_nul_in_any_text_is_invalid_request(api, client, llm, chat_model, body):
    key = _integration(api, _agent(api, chat_model))["key"]
    _error(_send(client, key, **body), 400, "invalid_request")
    res = client.post("/api/v1/messages?agent_id=%00", json={"content": "hi"}, headers={"Authorization": f"Bearer {key}"})
    _error(res, 400, "invalid_request")
    assert "NUL" in res.json["error"]["message"]
    assert llm.posts == [] and db.session.execute(select(Conversation)).first() is None


def test_an_unexpected_failure_is_agent_error_with_its_traceback_logged(api, client, chat_model, monkeypatch,
                                                                        caplog):
    key = _integration(api, _agent(api, chat_model))["key"]

    def broken(*_args):
        raise RuntimeError("a bug behind the agent")

    monkeypatch.setattr(app_messages, "send", broken)
    _error(_send(client, key, content="hi"), 502, "agent_error")
    [record] = [r for r in caplog.records if r.exc_info]
    assert "a bug behind the agent" in str(record.exc_info[1])
    monkeypatch.undo()
    _error(_send(client, None, content="hi"), 401, "invalid_api_key")  # the documented errors keep their codes
    _error(client.post("/api/v1/messages", data="{", content_type="application/json",
                       headers={"Authorization": f"Bearer {key}"}), 400, "invalid_request")


def test_a_session_ends_when_the_integration_moves_to_another_agent(api, client, llm, chat_model):
    first = _agent(api, chat_model)
    integration = _integration(api, first)
    llm.script(Reply("From the first agent."), Reply("From the second agent."))
    session = _send(client, integration["key"], content="hi").json["session_id"]
    second = _agent(api, chat_model, name="second")
    res = api.put(f"/api/integrations/{integration['id']}", json={"agent_id": second["id"]})
    assert res.status_code == 200, res.json

    refused = _send(client, integration["key"], content="again", session_id=session)
    _error(refused, 400, "invalid_request")
    assert "new session" in refused.json["error"]["message"]
    assert len(llm.posts) == 1  # the old agent did not answer
    fresh = _send(client, integration["key"], content="again").json
    assert fresh["content"] == "From the second agent." and fresh["session_id"] != session
    assert db.session.get(Conversation, fresh["conversation_id"]).agent_id == second["id"]


def test_a_refused_request_leaves_no_conversation_behind(api, client, llm, chat_model):
    agent = _agent(api, chat_model)
    key = _integration(api, agent)["key"]
    llm.script(Reply("Kept."))
    kept = _send(client, key, content="hi").json["conversation_id"]
    api.put(f"/api/agents/{agent['id']}", json={"status": "inactive"})
    _error(_send(client, key, content="hi"), 403, "integration_inactive")
    _error(_send(client, key, content="hi", stream=True), 403, "integration_inactive")
    db.session.expire_all()
    assert db.session.execute(select(Conversation.id)).scalars().all() == [kept]
    assert api.get("/api/conversations").json["pagination"]["total"] == 1
