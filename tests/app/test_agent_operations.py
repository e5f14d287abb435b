"""Agent operations through the HTTP API with the real runtime: soul versions, memory notes the agent
remembers and recalls, delegation between agents (cycles, depth, cost), messages between agents.

The fake LLM server stands in for the provider; everything else is real (SQLite/PostgreSQL, the embedding
model, Chroma, the lexical index, the usage ledger).
"""
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Message, UsageRecord
from app.services import agent_messages
from tests.conftest import wait_for
from tests.support.fake_llm import Reply, Sleep, ToolCallReply


def _agent(api, model, name, tools=(), **fields):
    res = api.post("/api/agents", json={"name": name, "model_id": model["id"], "tools": list(tools),
                                        "system_prompt": f"You are {name}.", **fields})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _say(api, agent, text):
    conversation = api.post("/api/conversations", json={"agent_id": agent["id"], "user_id": "u1"}).json["data"]
    res = api.post(f"/api/conversations/{conversation['id']}/messages", json={"message": text})
    assert res.status_code == 200, res.json
    return conversation, res.json["data"]


def _tool_result(request) -> str:
    return request.body["messages"][-1]["content"]


def test_soul_is_versioned_and_the_agent_uses_the_latest(api, llm, chat_model):
    agent = _agent(api, chat_model, "writer")
    soul = api.get(f"/api/agents/{agent['id']}/soul").json["data"]
    assert soul["version"] == 1 and soul["system_prompt"] == "You are writer."

    second = api.put(f"/api/agents/{agent['id']}/soul", json={"system_prompt": "You write haiku only."})
    assert second.status_code == 200, second.json
    same = api.put(f"/api/agents/{agent['id']}/soul", json={"system_prompt": "You write haiku only."}).json["data"]
    assert same["version"] == 2  # the same text again is no new version
    assert [v["version"] for v in same["versions"]] == [2, 1]
    assert same["versions"][1]["system_prompt"] == "You are writer."
    assert api.get(f"/api/agents/{agent['id']}").json["data"]["system_prompt"] == "You write haiku only."

    llm.script(Reply("Autumn moon rises"))
    _say(api, agent, "Write something.")
    assert llm.posts[-1].body["messages"][0]["content"].startswith("You write haiku only.")

    bad = api.put(f"/api/agents/{agent['id']}/soul", json={"system_prompt": ""})
    assert bad.status_code == 422 and bad.json["success"] is False
    missing = api.get("/api/agents/agent_nope/soul")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_a_remembered_note_is_recalled_and_in_the_prompt_of_a_later_conversation(api, llm, chat_model):
    agent = _agent(api, chat_model, "keeper", tools=["remember", "recall"])
    # An unrelated note, through the API (recall must rank the relevant one first). Written first, it also
    # loads the embedding model outside the tool's timeout, as `magnet serve` does at start.
    api.put(f"/api/agents/{agent['id']}/memory",
            json={"notes": [{"key": "office-hours", "text": "The Berlin office opens at nine in the morning."}]})
    llm.script(ToolCallReply("remember", {"key": "acme-colour", "text": "ACME's brand colour is teal.",
                                          "tags": ["acme"]}),
               Reply("I will remember that."))
    _, first = _say(api, agent, "Remember: ACME's brand colour is teal.")
    assert first["tool_calls"][0]["status"] == "ok", first["tool_calls"]
    memory = api.get(f"/api/agents/{agent['id']}/memory").json["data"]
    assert [(n["key"], n["text"], n["tags"]) for n in memory["notes"]] == [
        ("acme-colour", "ACME's brand colour is teal.", ["acme"]),
        ("office-hours", "The Berlin office opens at nine in the morning.", [])]

    llm.script(ToolCallReply("recall", {"query": "which colour does ACME use for its brand"}),
               Reply("Teal."))
    calls_before = len(llm.posts)
    _, second = _say(api, agent, "What colour should the ACME banner be?")
    assert second["content"] == "Teal."
    opening, after_tool = llm.posts[calls_before], llm.posts[calls_before + 1]
    system = opening.body["messages"][0]["content"]
    assert "Notes from your memory" in system and "- acme-colour: ACME's brand colour is teal." in system
    assert system.index("acme-colour") < system.index("office-hours")
    recalled = _tool_result(after_tool)
    assert recalled.splitlines()[1] == "- acme-colour: ACME's brand colour is teal. (tags: acme)"

    found = api.get(f"/api/agents/{agent['id']}/memory/recall", query_string={"query": "office opening time"})
    assert found.status_code == 200 and found.json["data"][0]["key"] == "office-hours"
    history = api.get(f"/api/agents/{agent['id']}/memory/history").json["data"]
    assert {(h["key"], h["changed_by"], h["action"]) for h in history} == {
        ("acme-colour", "agent", "put"), ("office-hours", "api", "put")}


def test_recall_without_a_usable_embedding_model_is_a_409_not_a_client_error(api, chat_model):
    agent = _agent(api, chat_model, "forgetful")
    builtin = next(m["id"] for m in api.get("/api/models?kind=embedding").json["data"] if m["is_default"])
    remote = api.post("/api/models", json={"name": "remote-embed", "provider": "openai_compatible", "kind": "embedding",
                                           "model_id": "text-embedding-3-small", "endpoint": "http://127.0.0.1:9/v1",
                                           "is_default": True})
    assert remote.status_code == 201, remote.json
    try:
        # Writing says it could not index the note, and keeps it: nothing the client sent is lost.
        res = api.put(f"/api/agents/{agent['id']}/memory", json={"notes": [{"key": "k", "text": "a note"}]})
        assert res.status_code == 409 and res.json["error"]["code"] == "embedding_model_unusable", res.json
        assert [n["key"] for n in api.get(f"/api/agents/{agent['id']}/memory").json["data"]["notes"]] == ["k"]
        res = api.get(f"/api/agents/{agent['id']}/memory/recall", query_string={"query": "note"})
        assert res.status_code == 409 and res.json["error"]["code"] == "embedding_model_unusable", res.json
        assert res.json["error"]["details"] == {"model_id": remote.json["data"]["id"]}
        # A local model whose folder holds no model: the same 409, not a 500.
        broken = api.post("/api/models", json={"name": "broken-local", "provider": "local", "kind": "embedding",
                                               "model_id": "/nonexistent/model", "is_default": True})
        assert broken.status_code == 201, broken.json
        for res in (api.put(f"/api/agents/{agent['id']}/memory", json={"notes": [{"key": "k2", "text": "more"}]}),
                    api.get(f"/api/agents/{agent['id']}/memory/recall", query_string={"query": "note"})):
            assert res.status_code == 409 and res.json["error"]["code"] == "embedding_model_unusable", res.json
    finally:
        api.put(f"/api/models/{builtin}", json={"is_default": True})


def test_memory_is_bounded_versioned_and_deletable(api, app, chat_model, monkeypatch):
    monkeypatch.setattr(app.extensions["magnet.config"], "agent_memory_max_notes", 2)
    agent = _agent(api, chat_model, "bounded")
    url = f"/api/agents/{agent['id']}/memory"
    full = api.put(url, json={"notes": [{"key": k, "text": f"note {k}"} for k in ("a", "b", "c")]})
    assert full.status_code == 409 and full.json["error"]["code"] == "memory_full", full.json
    assert full.json["error"]["details"] == {"max_notes": 2, "notes": 0, "new_notes": 3}
    assert api.get(url).json["data"]["count"] == 0  # all or none

    assert api.put(url, json={"notes": [{"key": "a", "text": "one"}, {"key": "b", "text": "two"}]}).status_code == 200
    assert api.put(url, json={"notes": [{"key": "c", "text": "three"}]}).status_code == 409
    replaced = api.put(url, json={"notes": [{"key": "a", "text": "one, revised", "tags": ["x"]}]}).json["data"]
    assert {n["key"]: (n["text"], n["version"]) for n in replaced["notes"]} == {"a": ("one, revised", 2),
                                                                               "b": ("two", 1)}
    assert api.delete(f"{url}/b").status_code == 200
    assert api.delete(f"{url}/b").status_code == 404
    history = api.get(f"{url}/history", query_string={"key": "a"}).json["data"]
    assert [(h["version"], h["text"]) for h in history] == [(2, "one, revised"), (1, "one")]
    assert [h["action"] for h in api.get(f"{url}/history", query_string={"key": "b"}).json["data"]] == [
        "delete", "put"]
    recalled = api.get(f"{url}/recall", query_string={"query": "two"}).json["data"]
    assert [n["key"] for n in recalled] == ["a"]  # b is deleted: never recalled

    for body in ({"notes": []}, {"notes": [{"key": "", "text": "x"}]}, {"notes": [{"key": "k"}]},
                 {"notes": [{"key": "k", "text": "x", "colour": "red"}]}):
        res = api.put(url, json=body)
        assert res.status_code == 422 and res.json["success"] is False, (body, res.json)
    twice = api.put(url, json={"notes": [{"key": "k", "text": "x"}, {"key": "k", "text": "y"}]})
    assert twice.status_code == 422 and "notes[1].key" in twice.json["error"]["details"]["fields"]


def test_delegation_that_would_cycle_is_refused_and_the_callee_cost_is_the_callers(api, llm, chat_model):
    alice = _agent(api, chat_model, "alice", tools=["ask_agent"])
    _agent(api, chat_model, "bob", tools=["ask_agent"])
    llm.script(
        ToolCallReply("ask_agent", {"agent": "bob", "question": "What is our refund window?"},
                      prompt_tokens=100, completion_tokens=10),                     # alice
        ToolCallReply("ask_agent", {"agent": "alice", "question": "Do you know the refund window?"},
                      call_id="call_b", prompt_tokens=50, completion_tokens=5),   # bob asks alice back
        Reply("Fourteen days.", prompt_tokens=60, completion_tokens=6),           # bob, after the refusal
        Reply("Bob says fourteen days.", prompt_tokens=200, completion_tokens=20),  # alice
    )
    conversation, answer = _say(api, alice, "How long is the refund window?")
    assert answer["content"] == "Bob says fourteen days."
    refusal = _tool_result(llm.posts[2])
    assert "cycle" in refusal and "alice -> bob -> alice" in refusal, refusal
    assert answer["tool_calls"][0]["status"] == "ok"
    assert _tool_result(llm.posts[3]) == "bob answered: Fourteen days."

    # Hand-computed at 1.0 per 1k prompt and 2.0 per 1k completion tokens:
    # alice (100 + 200) / 1000 + (10 + 20) * 2 / 1000 = 0.36; bob (50 + 60) / 1000 + (5 + 6) * 2 / 1000 = 0.132
    rows = db.session.execute(select(UsageRecord).where(UsageRecord.conversation_id == conversation["id"],
                                                        UsageRecord.operation == "chat")).scalars().all()
    by_agent: dict[str, float] = {}
    for row in rows:
        by_agent[row.entity_id] = round(by_agent.get(row.entity_id, 0) + row.cost, 6)
    bob_rows = [r for r in rows if r.entity_id != alice["id"]]
    assert len(rows) == 4 and len(bob_rows) == 2
    assert by_agent[alice["id"]] == pytest.approx(0.36) and by_agent[bob_rows[0].entity_id] == pytest.approx(0.132)
    assert all(r.details["delegated_by"] == alice["id"] and r.details["caller_message_id"] == answer["id"]
               for r in bob_rows)
    message = db.session.get(Message, answer["id"])
    assert message.cost == pytest.approx(0.492) and message.prompt_tokens == 410 and message.completion_tokens == 41


def test_delegation_deeper_than_the_limit_is_refused(api, llm, chat_model):
    names = ["lead", "manager", "engineer", "intern"]
    agents = [_agent(api, chat_model, name, tools=["ask_agent"]) for name in names]
    llm.script(
        ToolCallReply("ask_agent", {"agent": "manager", "question": "Status?"}, call_id="c1"),
        ToolCallReply("ask_agent", {"agent": "engineer", "question": "Status?"}, call_id="c2"),
        ToolCallReply("ask_agent", {"agent": "intern", "question": "Status?"}, call_id="c3"),  # depth 3: refused
        Reply("Engineer: done."), Reply("Manager: done."), Reply("Lead: all done."))
    _, answer = _say(api, agents[0], "What is the status?")
    assert answer["content"] == "Lead: all done."
    refusal = _tool_result(llm.posts[3])
    assert "limited to 2 levels" in refusal and "lead -> manager -> engineer" in refusal, refusal
    assert len(llm.posts) == 6  # the intern never ran

    unknown = ToolCallReply("ask_agent", {"agent": "nobody", "question": "?"})
    llm.script(unknown, Reply("No such colleague."))
    _, answer = _say(api, agents[0], "Ask nobody.")
    assert "There is no agent 'nobody'" in _tool_result(llm.posts[-1])


def test_a_message_is_processed_and_answered_with_a_reply(api, llm, chat_model):
    alice = _agent(api, chat_model, "alice")
    bob = _agent(api, chat_model, "bob")
    sent = api.post("/api/agents/message", json={"from": "alice", "to": bob["id"], "content": "Can you review PR 7?",
                                                 "type": "request"})
    assert sent.status_code == 201, sent.json
    message = sent.json["data"]
    assert (message["from"], message["to_name"], message["read"]) == (alice["id"], "bob", False)
    assert [m["id"] for m in agent_messages.unread_messages_for(bob["id"])] == [message["id"]]
    unread = api.get("/api/agents/comms", query_string={"agent": "bob", "unread": "true"}).json["data"]
    assert [m["id"] for m in unread] == [message["id"]]

    llm.script(Reply("Reviewed: looks good."))
    processed = api.post(f"/api/agents/{bob['id']}/inbox/process")
    assert processed.status_code == 200, processed.json
    [outcome] = processed.json["data"]["processed"]
    assert outcome["status"] == "replied"
    assert "Can you review PR 7?" in llm.posts[-1].body["messages"][-1]["content"]
    comms = {m["id"]: m for m in api.get("/api/agents/comms", query_string={"agent": "alice"}).json["data"]}
    reply = comms[outcome["reply_id"]]
    assert (reply["from"], reply["to"], reply["type"], reply["in_reply_to"], reply["content"]) == (
        bob["id"], alice["id"], "reply", message["id"], "Reviewed: looks good.")
    assert comms[message["id"]]["read"] is True and agent_messages.unread_messages_for(bob["id"]) == []

    # A reply is read, never answered (no turn): two agents must not answer each other forever.
    calls = len(llm.posts)
    [read] = agent_messages.process_unread_messages(alice["id"])
    assert read["status"] == "read" and len(llm.posts) == calls
    assert api.post(f"/api/agents/{bob['id']}/inbox/process").json["data"]["processed"] == []


def test_the_heartbeat_shows_unread_messages_and_its_post_has_them_answered(api, llm, chat_model, worker):
    _agent(api, chat_model, "alice")
    bob = _agent(api, chat_model, "bob")
    message = api.post("/api/agents/message", json={"from": "alice", "to": "bob", "content": "Status of PR 9?"}).json["data"]
    beat = api.get(f"/api/agents/{bob['id']}/heartbeat").json["data"]
    assert [m["id"] for m in beat["unread_messages"]] == [message["id"]]

    llm.script(Reply("PR 9 is merged."))
    checked = api.post(f"/api/agents/{bob['id']}/heartbeat")
    assert checked.status_code == 200 and checked.json["data"]["messages_queued"] == 1, checked.json
    replies = wait_for(lambda: [m for m in api.get("/api/agents/comms", query_string={"agent": "alice"}).json["data"]
                                if m["type"] == "reply"], lambda found: found, timeout=60)
    assert (replies[0]["in_reply_to"], replies[0]["content"]) == (message["id"], "PR 9 is merged.")
    assert api.get(f"/api/agents/{bob['id']}/heartbeat").json["data"]["unread_messages"] == []


def test_bad_messages_are_refused_in_the_envelope(api, chat_model):
    _agent(api, chat_model, "alice")
    cases = [({"from": "alice", "to": "ghost", "content": "hi"}, 404),
             ({"from": "alice", "to": "alice", "content": "hi"}, 422),
             ({"from": "alice", "to": "alice", "content": "hi", "type": "shout"}, 422),
             ({"from": "alice", "content": "hi"}, 422),
             ({"from": "alice", "to": "bob", "content": ""}, 422)]
    for body, status in cases:
        res = api.post("/api/agents/message", json=body)
        assert res.status_code == status and res.json["success"] is False, (body, res.json)
    assert api.get("/api/agents/comms", query_string={"agent": "ghost"}).status_code == 404
    assert api.post("/api/agents/agent_nope/inbox/process").status_code == 404


def test_a_delegated_turn_that_outlasts_its_timeout_is_a_tool_error(api, app, llm, chat_model, monkeypatch):
    monkeypatch.setattr(app.extensions["magnet.config"], "agent_delegation_timeout_seconds", 1.0)
    caller = _agent(api, chat_model, "caller", tools=["ask_agent"])
    _agent(api, chat_model, "slowpoke")
    llm.script(ToolCallReply("ask_agent", {"agent": "slowpoke", "question": "Anything?"}),
               Sleep(3.0, then=Reply("Too late.")),
               Reply("Slowpoke did not answer in time."))
    _, answer = _say(api, caller, "Ask slowpoke.")
    assert answer["content"] == "Slowpoke did not answer in time."
    [call] = answer["tool_calls"]
    assert call["error"]["code"] == "timeout", call
    assert "did not finish its turn within 1 s" in _tool_result(llm.posts[-1])
