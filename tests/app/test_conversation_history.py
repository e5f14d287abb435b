"""Clearing a conversation's history (DELETE /api/conversations/{id}): what it resets, and that it waits
for the turn in progress rather than leave that turn's answer without its question."""
import threading

from tests.app.test_agent_conversations import _agent, _conversation, _ledger, _say
from tests.conftest import wait_for
from tests.support.fake_llm import GatedStream, Reply


def _detail(api, conversation):
    return api.get(f"/api/conversations/{conversation['id']}").json["data"]


def test_clearing_resets_the_counters_as_if_nothing_was_said(api, llm, chat_model):
    agent = _agent(api, chat_model, [])
    conversation = _conversation(api, agent)
    llm.script(Reply("first"), Reply("fresh"))
    _say(api, conversation, "remember me")
    before = _detail(api, conversation)
    assert before["message_count"] == 2 and before["last_message_at"] is not None and before["title"] == "remember me"

    res = api.delete(f"/api/conversations/{conversation['id']}")
    assert res.status_code == 200 and "2 messages" in res.json["message"]
    cleared = _detail(api, conversation)
    assert (cleared["messages"], cleared["message_count"], cleared["last_message_at"], cleared["title"]) == \
        ([], 0, None, None)
    assert len(_ledger(conversation["id"])) == 1  # what was spent stays accounted for

    # the lease the clearing held is free again: the next turn runs, and counts from zero
    _say(api, conversation, "who am I?")
    after = _detail(api, conversation)
    assert after["message_count"] == 2 and after["title"] == "who am I?" and after["last_message_at"] is not None


def test_clearing_waits_for_the_turn_in_progress(api, llm, chat_model):
    agent = _agent(api, chat_model, [])
    conversation = _conversation(api, agent)
    gate = threading.Event()
    llm.script(GatedStream("the answer to one", gate, after_words=1))  # the turn stays open until the gate
    try:
        res = api.post(f"/api/conversations/{conversation['id']}/messages",
                       json={"message": "one", "stream": True}, buffered=False)
        assert b"message.started" in next(iter(res.response))
        wait_for(lambda: len(llm.posts), lambda n: n == 1)  # the turn is with the model

        busy = api.delete(f"/api/conversations/{conversation['id']}")
        assert busy.status_code == 409, busy.json
        assert busy.json["error"]["code"] == "turn_in_progress"
        assert busy.json["error"]["details"] == {"conversation_id": conversation["id"]}
        assert [m["content"] for m in _detail(api, conversation)["messages"]] == ["one"]  # nothing was removed
    finally:
        gate.set()
    assert "the answer to one" in b"".join(res.response).decode()
    detail = _detail(api, conversation)
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [("user", "one"),
                                                                       ("assistant", "the answer to one")]
    assert detail["message_count"] == 2

    # once the answer is saved, the history can go
    assert api.delete(f"/api/conversations/{conversation['id']}").status_code == 200
    assert _detail(api, conversation)["message_count"] == 0


def test_clearing_an_unknown_conversation_is_404(api):
    res = api.delete("/api/conversations/conv_missing")
    assert res.status_code == 404 and res.json["error"]["code"] == "not_found"
