"""`POST /api/v1/messages` as its seed contract words it: the client's own session ids, the contract's
attachment shape, and `session.created` / `message_id` on every stream."""
import base64

from sqlalchemy import select

from app.extensions import db
from app.models import Conversation
from tests.app.conftest import sse_events
from tests.app.test_app_messages import _agent, _error, _integration, _send
from tests.support.fake_llm import Reply


def test_a_client_chosen_session_id_is_one_conversation_per_integration(api, client, llm, chat_model):
    agent = _agent(api, chat_model)
    key = _integration(api, agent)["key"]
    other_key = _integration(api, agent, name="second-app")["key"]
    llm.script(Reply("Hello Ada."), Reply("You are Ada."), Reply("Hello stranger."), Reply("A minted one."),
               Reply("Still minted."))

    first = _send(client, key, content="I am Ada.", session_id="user-42:chat-7")
    assert first.status_code == 200, first.json
    assert first.json["session_id"] == "user-42:chat-7"
    again = _send(client, key, content="Who am I?", session_id="user-42:chat-7").json
    assert again["conversation_id"] == first.json["conversation_id"]  # same id = same conversation
    assert [m["content"] for m in llm.posts[-1].body["messages"][1:]] == ["I am Ada.", "Hello Ada.", "Who am I?"]

    # The same id from another integration is that integration's own, new conversation.
    elsewhere = _send(client, other_key, content="Who am I?", session_id="user-42:chat-7").json
    assert elsewhere["conversation_id"] != first.json["conversation_id"]
    assert [m["role"] for m in llm.posts[-1].body["messages"]] == ["system", "user"]

    # Ids Magnet mints keep working.
    minted = _send(client, key, content="hi").json
    assert minted["session_id"].startswith("sess_")
    assert _send(client, key, content="hi", session_id=minted["session_id"]).json["conversation_id"] == \
        minted["conversation_id"]
    # ...but a minted id of another integration is not taken for a new session of this one.
    _error(_send(client, other_key, content="hi", session_id=minted["session_id"]), 400, "invalid_request")
    db.session.expire_all()
    sessions = db.session.execute(select(Conversation.session_id)).scalars().all()
    assert sorted(sessions) == sorted(["user-42:chat-7", "user-42:chat-7", minted["session_id"]])


def test_attachments_in_the_contract_shape_are_read(api, client):
    agent = api.post("/api/agents", json={"name": "reader"}).json["data"]  # built-in local model
    key = _integration(api, agent)["key"]
    policy = b"Travel policy.\n\nHotel costs are reimbursed up to ninety euros per night."
    res = _send(client, key, content="How much is reimbursed for hotels?", attachments=[
        {"type": "file", "name": "travel.txt", "data": base64.b64encode(policy).decode(),
         "content_type": "text/plain"}])
    assert res.status_code == 200, res.json
    assert res.json["citations"][0]["source"] == "travel.txt"
    assert res.json["attachments"][0]["filename"] == "travel.txt"

    data = base64.b64encode(b"text").decode()
    _error(_send(client, key, content="hi", attachments=[{"type": "file", "data": data}]), 400, "invalid_request")
    _error(_send(client, key, content="hi", attachments=[{"type": "video", "name": "a.txt", "data": data}]),
           400, "invalid_request")
    _error(_send(client, key, content="hi", attachments=[{"name": "a.txt", "filename": "b.txt", "data": data}]),
           400, "invalid_request")


def test_every_stream_opens_with_session_created_and_names_the_message(api, client, llm, chat_model):
    key = _integration(api, _agent(api, chat_model))["key"]
    llm.script(Reply("One."), Reply("Two."))
    first = sse_events(_send(client, key, content="hi", stream=True, session_id="mine-1").get_data(as_text=True))
    second = sse_events(_send(client, key, content="again", stream=True, session_id="mine-1").get_data(as_text=True))
    for events, is_new in ((first, True), (second, False)):
        assert events[0]["event"] == "session.created" and events[0]["session_id"] == "mine-1"
        assert events[0]["is_new"] is is_new
        started = next(e for e in events if e["event"] == "message.started")
        completed = next(e for e in events if e["event"] == "message.completed")
        assert started["message_id"].startswith("msg_") and completed["message_id"] == started["message_id"]
        assert completed["id"] == completed["message_id"]
    assert first[0]["conversation_id"] == second[0]["conversation_id"]


def test_two_first_messages_with_one_new_session_id_share_one_conversation(app, api, llm, chat_model):
    import threading

    key = _integration(api, _agent(api, chat_model))["key"]
    llm.script(Reply("One."), Reply("Two."))
    barrier, answers = threading.Barrier(2), []

    def send():
        client = app.test_client()
        barrier.wait()
        answers.append(_send(client, key, content="hi", session_id="race-1"))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 2 and all(a.status_code in (200, 400) for a in answers), [a.json for a in answers]
    # The loser of the race joined the winner's conversation (or was told a turn is still running in it).
    assert any(a.status_code == 200 for a in answers)
    db.session.expire_all()
    assert db.session.execute(select(Conversation.id).where(Conversation.session_id == "race-1")).scalars().all() \
        == [next(a.json["conversation_id"] for a in answers if a.status_code == 200)]
