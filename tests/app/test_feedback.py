"""Feedback on answers from apps (`/api/v1`, the app contract) and the platform, and test cases made from
rated conversations; real agents answering through the fake LLM."""
import pytest

from tests.support.fake_llm import Reply

pytestmark = pytest.mark.slow


def _agent(api, model, name="helper"):
    res = api.post("/api/agents", json={"name": name, "model_id": model["id"]})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _integration(api, agent, name):
    res = api.post("/api/integrations", json={"name": name, "agent_id": agent["id"]})
    assert res.status_code == 201, res.json
    return res.json["data"]["key"]


def _send(client, key, **body):
    return client.post("/api/v1/messages", json=body, headers={"Authorization": f"Bearer {key}"})


def _feedback(client, key, message_id, **body):
    return client.post(f"/api/v1/messages/{message_id}/feedback", json=body,
                       headers={"Authorization": f"Bearer {key}"} if key else {})


def _app_error(res, status, code):
    assert res.status_code == status, (res.status_code, res.json)
    assert set(res.json) == {"error"} and res.json["error"]["code"] == code and res.json["error"]["message"]


@pytest.fixture
def chat(api, client, llm, chat_model):
    """An integration's two-turn session: answers m1 (wrong) and m2."""
    agent = _agent(api, chat_model)
    key = _integration(api, agent, "shop")
    llm.script(Reply("Refunds take thirty days."), Reply("Parcels ship on Mondays."))
    first = _send(client, key, content="How long do refunds take?", session_id="s1")
    assert first.status_code == 200, first.json
    second = _send(client, key, content="When do parcels ship?", session_id="s1")
    return {"agent": agent, "key": key, "m1": first.json, "m2": second.json}


def test_app_feedback_is_one_per_message_per_key_and_replaced(api, client, chat):
    m1 = chat["m1"]
    res = _feedback(client, chat["key"], m1["id"], rating="down", comment="wrong")
    assert res.status_code == 200, res.json
    assert res.json["rating"] == "down" and res.json["source"] == "app" and "success" not in res.json
    replaced = _feedback(client, chat["key"], m1["id"], rating="up", comment=None)
    assert replaced.status_code == 200 and replaced.json["id"] == res.json["id"] and replaced.json["rating"] == "up"
    mine = api.get(f"/api/conversations/{m1['conversation_id']}/messages/{m1['id']}/feedback?source=app").json
    assert [(f["rating"], f["comment"]) for f in mine["data"]] == [("up", None)]

    # A platform key's feedback is its own, next to the app's.
    platform = api.post(f"/api/conversations/{m1['conversation_id']}/messages/{m1['id']}/feedback",
                        json={"rating": "down", "comment": "still wrong"})
    assert platform.status_code == 200 and platform.json["data"]["source"] == "platform"
    listed = api.get(f"/api/conversations/{m1['conversation_id']}/messages/{m1['id']}/feedback").json
    assert listed["pagination"]["total"] == 2
    downs = api.get("/api/feedback?rating=down").json["data"]
    assert [(f["message_id"], f["source"]) for f in downs] == [(m1["id"], "platform")]
    assert api.get(f"/api/feedback?agent_id={chat['agent']['id']}").json["pagination"]["total"] == 2
    # Clearing the conversation's history takes the feedback on its messages with it.
    assert api.delete(f"/api/conversations/{m1['conversation_id']}").status_code == 200
    assert api.get("/api/feedback").json["pagination"]["total"] == 0


def test_app_feedback_errors_keep_the_app_contract(api, client, chat):
    m1 = chat["m1"]
    _app_error(_feedback(client, None, m1["id"], rating="up"), 401, "invalid_api_key")
    _app_error(_feedback(client, chat["key"], m1["id"], rating="meh"), 400, "invalid_request")
    _app_error(_feedback(client, chat["key"], "msg_unknown", rating="up"), 400, "invalid_request")
    # Another integration cannot reach this integration's messages.
    other = _integration(api, chat["agent"], "other")
    _app_error(_feedback(client, other, m1["id"], rating="up"), 400, "invalid_request")
    # Platform errors are the envelope.
    bad = api.post(f"/api/conversations/{m1['conversation_id']}/messages/{m1['id']}/feedback", json={"rating": "meh"})
    assert bad.status_code == 422 and bad.json["success"] is False
    wrong_conversation = api.post(f"/api/conversations/conv_unknown/messages/{m1['id']}/feedback",
                                  json={"rating": "up"})
    assert wrong_conversation.status_code == 404 and wrong_conversation.json["error"]["code"] == "not_found"
    assert api.get("/api/feedback?rating=sideways").status_code == 422


def test_test_cases_from_rated_conversations(api, client, chat):
    m1, m2 = chat["m1"], chat["m2"]
    assert _feedback(client, chat["key"], m1["id"], rating="down", comment="Refunds take fourteen days.",
                     comment_is_correction=True).status_code == 200
    assert _feedback(client, chat["key"], m2["id"], rating="down", comment="meh").status_code == 200
    evaluation = api.post("/api/evaluations", json={
        "name": "from users", "type": "agent", "target_id": chat["agent"]["id"], "metrics": ["token_f1"]}).json["data"]
    url = f"/api/evaluations/{evaluation['id']}/test-cases/from-conversations"

    by_rating = api.post(url, json={"rating": "down"})
    assert by_rating.status_code == 201, by_rating.json
    data = by_rating.json["data"]
    assert [(c["input"], c["expected_output"]) for c in data["test_cases"]] == [
        ("How long do refunds take?", "Refunds take fourteen days.")]
    assert data["test_cases"][0]["metadata"]["message_id"] == m1["id"]
    assert data["skipped"] == [{"message_id": m2["id"], "reason": data["skipped"][0]["reason"]}]
    assert "no correction" in data["skipped"][0]["reason"]

    # By id, with a reviewer's correction in the request; a user message and an unknown id are skipped.
    conversation = api.get(f"/api/conversations/{m2['conversation_id']}").json["data"]
    user_message = next(m for m in conversation["messages"] if m["role"] == "user")
    by_id = api.post(url, json={"message_ids": [m2["id"], user_message["id"], "msg_unknown"],
                                "corrections": {m2["id"]: "Parcels ship within three working days."}}).json["data"]
    assert [(c["input"], c["expected_output"]) for c in by_id["test_cases"]] == [
        ("When do parcels ship?", "Parcels ship within three working days.")]
    assert {s["message_id"]: s["reason"] for s in by_id["skipped"]} == {
        user_message["id"]: "not an assistant message", "msg_unknown": "message not found"}
    assert by_id["total"] == 2
    cases = api.get(f"/api/evaluations/{evaluation['id']}/test-cases").json["data"]
    assert len(cases) == 2

    nothing = api.post(url, json={})
    assert nothing.status_code == 422 and nothing.json["success"] is False
    assert api.post("/api/evaluations/eval_unknown/test-cases/from-conversations",
                    json={"rating": "down"}).status_code == 404
