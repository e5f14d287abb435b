"""An agent hands a task to a person (built-in tool `handoff_to_human`), and the person's answer later
joins the conversation: in GET /api/conversations/{id}, in the app integration's session, and in what
the agent remembers on its next turn. The fake LLM server makes the tool call."""
from tests.support.fake_llm import Reply, ToolCallReply

HANDOFF_ARGS = {"title": "Refund exception", "instructions": "Customer 42 asks for a refund after 60 days.\n"
                "Owner contact: support lead, +14155550123", "objective": "Approve or refuse the refund"}


def _agent(api, model, tools):
    res = api.post("/api/agents", json={"name": "helper", "model_id": model["id"], "tools": tools,
                                        "system_prompt": "You help customers."})
    assert res.status_code == 201, res.json
    return res.json["data"]


def test_an_agent_hands_off_and_the_humans_answer_joins_the_conversation(api, client, llm, chat_model, make_key):
    agent = _agent(api, chat_model, ["handoff_to_human"])
    integration = api.post("/api/integrations", json={"name": "shop", "agent_id": agent["id"]}).json["data"]
    llm.script(ToolCallReply("handoff_to_human", HANDOFF_ARGS),
               Reply("I have handed this to a colleague; they will answer here."))

    first = client.post("/api/v1/messages", headers={"Authorization": f"Bearer {integration['key']}"},
                        json={"content": "Can I still get a refund? I bought it 60 days ago.", "session_id": "s-1"})
    assert first.status_code == 200, first.json
    assert first.json["content"] == "I have handed this to a colleague; they will answer here."
    [call] = first.json["tool_calls"]
    assert call["name"] == "handoff_to_human" and call["status"] == "ok"
    offered = [t["function"]["name"] for t in llm.posts[0].body["tools"]]
    assert offered == ["handoff_to_human"]
    told = llm.posts[1].body["messages"][-1]
    assert told["role"] == "tool" and "Handed off to a human reviewer" in told["content"]

    reviewer = {"X-API-Key": make_key("reviewer")}
    [task] = client.get("/api/review/tasks", headers=reviewer).json["data"]
    conversation_id = first.json["conversation_id"]
    assert task["title"] == "Refund exception" and task["requester"] == {
        "type": "conversation", "id": conversation_id, "name": None}
    assert task["flags"] == []
    assert client.post(f"/api/review/tasks/{task['id']}/claim", headers=reviewer).status_code == 200
    done = client.post(f"/api/review/tasks/{task['id']}/complete", headers=reviewer,
                       json={"result": "Approved as a goodwill gesture."})
    assert done.status_code == 200, done.json

    detail = api.get(f"/api/conversations/{conversation_id}").json["data"]
    last = detail["messages"][-1]
    assert last["role"] == "assistant" and "Approved as a goodwill gesture." in last["content"]
    assert last["model"] == "human" and detail["message_count"] == 3

    # The app's next message in the same session: the agent remembers the person's answer.
    llm.script(Reply("Yes: the refund was approved."))
    second = client.post("/api/v1/messages", headers={"Authorization": f"Bearer {integration['key']}"},
                         json={"content": "So, what was decided?", "session_id": "s-1"})
    assert second.status_code == 200 and second.json["conversation_id"] == conversation_id
    remembered = [m["content"] for m in llm.posts[-1].body["messages"] if m["role"] == "assistant"]
    assert any("Approved as a goodwill gesture." in text for text in remembered)


def test_the_tool_is_opt_in(api, client, llm, chat_model):
    agent = _agent(api, chat_model, [])
    conversation = api.post("/api/conversations", json={"agent_id": agent["id"]}).json["data"]
    llm.script(Reply("Hello."))
    api.post(f"/api/conversations/{conversation['id']}/messages", json={"message": "hi"})
    assert "tools" not in llm.posts[0].body or not llm.posts[0].body["tools"]
    assert api.put(f"/api/agents/{agent['id']}", json={"tools": ["handoff_to_human"]}).status_code == 200
    assert api.put(f"/api/agents/{agent['id']}", json={"tools": ["handoff_to_humans"]}).status_code == 422
