"""Agents in conversation, through the HTTP API, with the fake LLM server standing in for a provider.

Real parts everywhere else: a synced folder, the embedding model, Chroma, SQLite/PostgreSQL, the ledger.
"""
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message, UsageRecord
from app.runtime.llm_types import ChatMessage, estimate_prompt_tokens
from tests.app.conftest import sse_events
from tests.conftest import wait_for
from tests.support.fake_llm import BrokenStream, Reply, Sleep, Status, ToolCallReply


def _agent(api, model, tools, **limits):
    res = api.post("/api/agents", json={"name": f"agent-{time.monotonic_ns()}", "model_id": model["id"],
                                        "tools": [t["id"] for t in tools], "system_prompt": "You help customers.",
                                        **limits})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _conversation(api, agent, user_id="u1"):
    res = api.post("/api/conversations", json={"agent_id": agent["id"], "user_id": user_id})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _say(api, conversation, text, **body):
    return api.post(f"/api/conversations/{conversation['id']}/messages", json={"message": text, **body})


def _ledger(conversation_id):
    return db.session.execute(select(UsageRecord).where(UsageRecord.conversation_id == conversation_id)).scalars().all()


def test_multi_turn_tool_using_conversation_is_remembered_cited_and_metered(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    conversation = _conversation(api, agent)
    llm.script(ToolCallReply("query", {"query": "refund processing time"}, prompt_tokens=100, completion_tokens=8),
               Reply("Refunds are processed within fourteen days [1].", prompt_tokens=300, completion_tokens=12),
               Reply("You asked about refunds.", prompt_tokens=150, completion_tokens=5))

    first = _say(api, conversation, "How long do refunds take?")
    assert first.status_code == 200, first.json
    answer = first.json["data"]
    assert answer["content"] == "Refunds are processed within fourteen days [1]."
    assert answer["status"] == "completed" and answer["no_answer"] is False
    [call] = answer["tool_calls"]
    assert call["name"] == "query" and call["tool_id"] == kb_tool["id"] and call["status"] == "ok"
    assert call["arguments"] == {"query": "refund processing time"}
    assert answer["citations"][0]["index"] == 1 and answer["citations"][0]["source"] == "faq.txt"

    # What the model saw: the RAG tool as a `query` function, then the tool's numbered passages.
    opening, after_tool = llm.posts[0].body, llm.posts[1].body
    assert [t["function"]["name"] for t in opening["tools"]] == ["query"]
    assert opening["tools"][0]["function"]["parameters"]["required"] == ["query"]
    assert opening["messages"][0]["role"] == "system" and "You help customers." in opening["messages"][0]["content"]
    tool_message = after_tool["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_1"
    assert "[1] (faq.txt)" in tool_message["content"] and "fourteen days" in tool_message["content"]

    second = _say(api, conversation, "What did I just ask?").json["data"]
    assert second["content"] == "You asked about refunds."
    remembered = [(m["role"], m["content"]) for m in llm.posts[2].body["messages"][1:]]
    assert remembered == [("user", "How long do refunds take?"),
                          ("assistant", "Refunds are processed within fourteen days [1]."),
                          ("user", "What did I just ask?")]

    detail = api.get(f"/api/conversations/{conversation['id']}").json["data"]
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "user", "assistant"]
    assert detail["message_count"] == 4 and detail["title"] == "How long do refunds take?"
    assert detail["messages"][1]["tool_calls"][0]["status"] == "ok"
    page = api.get(f"/api/conversations/{conversation['id']}/messages",
                   query_string={"limit": 1, "page": 2, "order": "asc", "role": "assistant"}).json
    assert page["pagination"] == {"page": 2, "limit": 1, "total": 2, "next_cursor": None}
    assert [m["content"] for m in page["data"]] == ["You asked about refunds."]
    assert api.get("/api/conversations/conv_nope/messages").status_code == 404

    # The agent's model calls, priced 1.0 in / 2.0 out per 1k: turn 1 = (100 + 300) * 1.0/1k + (8 + 12) * 2.0/1k
    # = 0.44; turn 2 = 150 * 1.0/1k + 5 * 2.0/1k = 0.16. Each message's usage is its turn's ledger rows.
    rows = _ledger(conversation["id"])
    chat = [r for r in rows if r.operation == "chat"]
    assert [(r.entity_type, r.prompt_tokens, r.completion_tokens) for r in chat] == [
        ("agent", 100, 8), ("agent", 300, 12), ("agent", 150, 5)]
    assert answer["usage"]["cost"] == pytest.approx(0.44) and second["usage"]["cost"] == pytest.approx(0.16)
    assert sum(r.cost for r in rows) == pytest.approx(0.60)
    assert answer["usage"]["prompt_tokens"] + second["usage"]["prompt_tokens"] == sum(r.prompt_tokens for r in rows)
    tool_rows = [r for r in rows if r.operation == "tool"]
    assert [(r.entity_type, r.entity_id) for r in tool_rows] == [("rag_tool", kb_tool["id"])]

    listed = api.get("/api/conversations", query_string={"agent_id": agent["id"]}).json
    assert [c["id"] for c in listed["data"]] == [conversation["id"]] and listed["pagination"]["total"] == 1


def test_streamed_turn_events_follow_verbosity(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    conversation = _conversation(api, agent)
    llm.script(ToolCallReply("query", {"query": "shipping time"}, text="Let me look that up."),
               Reply("Parcels ship within three working days [1]."))
    res = _say(api, conversation, "How fast do you ship?", stream=True, verbosity="full")
    assert res.status_code == 200 and res.mimetype == "text/event-stream"
    events = sse_events(res.get_data(as_text=True))
    names = [e["event"] for e in events]
    assert names[0] == "message.started" and names[-2:] == ["message.completed", "[DONE]"]
    assert names.index("tool.started") < names.index("tool.progress") < names.index("tool.completed")
    thinking = "".join(e["delta"] for e in events if e["event"] == "thinking.chunk")
    assert thinking.startswith("Let me look that up.")
    text = "".join(e["delta"] for e in events if e["event"] == "text.chunk")
    completed = events[-2]
    assert text == completed["content"] == "Parcels ship within three working days [1]."
    assert completed["citations"][0]["source"] == "shipping.md"
    assert completed["usage"]["prompt_tokens"] > 0

    llm.script(ToolCallReply("query", {"query": "refunds"}), Reply("Fourteen days [1]."))
    standard = sse_events(_say(api, conversation, "And refunds?", stream=True).get_data(as_text=True))
    assert {e["event"] for e in standard} == {"message.started", "tool.started", "tool.completed", "text.chunk",
                                              "message.completed", "[DONE]"}
    llm.script(ToolCallReply("query", {"query": "vpn"}), Reply("Use the VPN [1]."))
    minimal = sse_events(_say(api, conversation, "VPN?", stream=True, verbosity="minimal").get_data(as_text=True))
    assert {e["event"] for e in minimal} == {"message.started", "text.chunk", "message.completed", "[DONE]"}
    # The stored turn has the tool calls even when the stream did not show them.
    stored = api.get(f"/api/conversations/{conversation['id']}").json["data"]["messages"][-1]
    assert stored["tool_calls"][0]["arguments"] == {"query": "vpn"}


def test_malformed_arguments_and_unknown_tools_are_fed_back_to_the_model(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    conversation = _conversation(api, agent)
    llm.script(ToolCallReply("query", '{"query": "refunds"', call_id="c1"),
               ToolCallReply("delete_everything", {}, call_id="c2"),
               Reply("I could not use my tools."))
    answer = _say(api, conversation, "Refunds?").json["data"]
    assert answer["content"] == "I could not use my tools." and answer["status"] == "completed"
    malformed, unknown = answer["tool_calls"]
    assert malformed["status"] == "error" and malformed["error"]["code"] == "malformed_arguments"
    assert malformed["arguments"] == '{"query": "refunds"'
    assert unknown["status"] == "error" and unknown["error"]["code"] == "unknown_tool"
    fed_back = [m for m in llm.posts[2].body["messages"] if m["role"] == "tool"]
    assert "not a JSON object" in fed_back[0]["content"]
    assert "no tool named 'delete_everything'" in fed_back[1]["content"] and "query" in fed_back[1]["content"]


def test_a_model_repeating_the_same_call_is_made_to_answer(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool], max_iterations=6)
    conversation = _conversation(api, agent)
    same = {"query": "refunds"}
    llm.script(ToolCallReply("query", same, call_id="a"), ToolCallReply("query", same, call_id="b"),
               Reply("Fourteen days [1]."))
    answer = _say(api, conversation, "Refunds?").json["data"]
    assert answer["content"] == "Fourteen days [1]."
    assert [c["status"] for c in answer["tool_calls"]] == ["ok", "repeated"]
    assert "tools" not in llm.posts[2].body  # the round after a repeat offers no tools: it must answer
    assert len([r for r in _ledger(conversation["id"]) if r.operation == "tool"]) == 1  # run once


def test_max_iterations_end_with_a_round_without_tools(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool], max_iterations=2)
    conversation = _conversation(api, agent)
    llm.script(ToolCallReply("query", {"query": "one"}), Reply("Done after two rounds."))
    answer = _say(api, conversation, "Refunds?").json["data"]
    assert answer["content"] == "Done after two rounds."
    assert "tools" in llm.posts[0].body and "tools" not in llm.posts[1].body


class _SlowApi(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        time.sleep(2.0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"late": true}')


@pytest.fixture
def slow_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_tool_that_times_out_is_reported_to_the_model(api, llm, chat_model, slow_api):
    tool = api.post("/api/api-tools", json={"name": "Order Status", "method": "GET",
                                            "url_template": slow_api + "/orders/{{order_id}}", "timeout_seconds": 10,
                                            "input_schema": {"type": "object", "required": ["order_id"],
                                                             "properties": {"order_id": {"type": "string"}}}})
    assert tool.status_code == 201, tool.json
    agent = _agent(api, chat_model, [tool.json["data"]], tool_timeout_seconds=0.5)
    conversation = _conversation(api, agent)
    llm.script(ToolCallReply("order_status", {"order_id": "A-1"}), Reply("The order service is slow."))
    answer = _say(api, conversation, "Where is order A-1?").json["data"]
    assert answer["content"] == "The order service is slow."
    [call] = answer["tool_calls"]
    assert call["status"] == "timeout" and call["name"] == "order_status"
    assert llm.posts[0].body["tools"][0]["function"]["parameters"]["required"] == ["order_id"]
    assert "did not answer within 0.5 s" in llm.posts[1].body["messages"][-1]["content"]


def test_provider_failures_end_the_turn_with_the_right_error_and_are_saved(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool], turn_timeout_seconds=1)
    conversation = _conversation(api, agent)
    llm.script(Status(400, "bad request from provider"))
    failed = _say(api, conversation, "Hello?")
    assert failed.status_code == 502 and failed.json["error"]["code"] == "agent_error"

    llm.script(Sleep(5))
    slow = _say(api, conversation, "Still there?")
    assert slow.status_code == 504 and slow.json["error"]["code"] == "timeout"

    llm.script(BrokenStream())
    events = sse_events(_say(api, conversation, "Stream it", stream=True).get_data(as_text=True))
    assert [e["event"] for e in events][-2:] == ["error", "[DONE]"]
    assert events[-2]["code"] == "agent_error"

    messages = api.get(f"/api/conversations/{conversation['id']}").json["data"]["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "completed"), ("assistant", "failed"), ("user", "completed"), ("assistant", "timeout"),
        ("user", "completed"), ("assistant", "failed")]
    # Failed turns are not remembered as answers: the next turn sees only the user's messages.
    llm.script(Reply("Back again."))
    _say(api, conversation, "Once more")
    roles = [m["role"] for m in llm.posts[-1].body["messages"]]
    assert roles == ["system", "user", "user", "user", "user"]


def test_a_client_that_disconnects_mid_stream_still_gets_its_turn_saved(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    conversation = _conversation(api, agent)
    llm.script(ToolCallReply("query", {"query": "refunds"}), Sleep(1.0, then=Reply("Saved anyway [1].")))
    res = api.post(f"/api/conversations/{conversation['id']}/messages",
                   json={"message": "Refunds?", "stream": True}, buffered=False)
    first = next(iter(res.response))
    assert b"message.started" in first
    res.close()  # the client goes away while the model is still answering

    def last_message():
        db.session.expire_all()
        return db.session.execute(select(Message).where(Message.conversation_id == conversation["id"])
                                  .order_by(Message.created_at.desc())).scalars().first()

    saved = wait_for(last_message, lambda m: m is not None and m.role == "assistant", timeout=30)
    assert saved.content == "Saved anyway [1]." and saved.status == "completed"
    assert saved.tool_calls[0]["status"] == "ok"


def test_memory_keeps_recent_messages_and_notes_the_dropped_ones(api, llm, chat_model):
    agent = _agent(api, chat_model, [], memory_messages=2)
    conversation = _conversation(api, agent)
    for n in range(3):
        llm.script(Reply(f"answer {n}"))
        _say(api, conversation, f"question {n}")
    sent = llm.posts[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "system", "user", "assistant", "user"]
    assert sent[1]["content"].startswith("Note: 2 earlier messages") and '"question 0"' in sent[1]["content"]
    assert [m["content"] for m in sent[2:]] == ["question 1", "answer 1", "question 2"]


def test_clearing_history_forgets_messages_but_keeps_the_ledger(api, llm, chat_model):
    agent = _agent(api, chat_model, [])
    conversation = _conversation(api, agent)
    llm.script(Reply("first"))
    _say(api, conversation, "remember me")
    res = api.delete(f"/api/conversations/{conversation['id']}")
    assert res.status_code == 200 and "2 messages" in res.json["message"]
    detail = api.get(f"/api/conversations/{conversation['id']}").json["data"]
    assert detail["messages"] == [] and detail["message_count"] == 0
    assert len(_ledger(conversation["id"])) == 1
    llm.script(Reply("fresh"))
    _say(api, conversation, "who am I?")
    assert [m["role"] for m in llm.posts[-1].body["messages"]] == ["system", "user"]


def test_the_local_model_is_a_working_agent_without_a_provider(api, kb_tool):
    agent = api.post("/api/agents", json={"name": "local", "tools": [kb_tool["id"]]}).json["data"]
    conversation = _conversation(api, agent)
    answer = _say(api, conversation, "How long do refunds take?").json["data"]
    assert answer["content"] == "Refunds are processed within fourteen days of the request [1]."
    assert answer["citations"][0]["source"] == "faq.txt" and answer["tool_calls"][0]["name"] == "query"
    nothing = _say(api, conversation, "Which volcano erupted in 2010?").json["data"]
    assert nothing["no_answer"] is True and nothing["citations"] == []
    assert nothing["content"] == "I could not find an answer to that in the knowledge available to me."
    streamed = sse_events(_say(api, conversation, "Which volcano erupted in 2010?", stream=True).get_data(as_text=True))
    assert "".join(e["delta"] for e in streamed if e["event"] == "text.chunk") == nothing["content"]


def test_the_local_model_reads_a_short_follow_up_with_the_question_before_it(api, kb_tool):
    agent = api.post("/api/agents", json={"name": "local", "tools": [kb_tool["id"]]}).json["data"]
    conversation = _conversation(api, agent)
    first = _say(api, conversation, "Who handles refunds?").json["data"]
    assert first["tool_calls"][0]["arguments"] == {"query": "Who handles refunds?"}

    # Alone, "how long does that take" shares no word with the documents: it is read as a follow-up.
    follow_up = _say(api, conversation, "And how long does that take?").json["data"]
    assert follow_up["tool_calls"][0]["arguments"] == {"query": "Who handles refunds? And how long does that take?"}
    assert follow_up["content"] == "Refunds are processed within fourteen days of the request [1]."
    assert follow_up["citations"][0]["source"] == "faq.txt"

    # A question with a subject of its own is searched as it was asked.
    own = _say(api, conversation, "How much does express delivery cost?").json["data"]
    assert own["tool_calls"][0]["arguments"] == {"query": "How much does express delivery cost?"}
    assert own["citations"][0]["source"] == "shipping.md"


def test_bad_requests_are_refused_before_any_work(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    conversation = _conversation(api, agent)
    assert api.post("/api/conversations", json={"agent_id": "agent_nope"}).status_code == 404
    assert api.post("/api/conversations", json={"agent": agent["id"]}).status_code == 422
    assert api.get("/api/conversations/conv_nope").status_code == 404
    assert _say(api, {"id": "conv_nope"}, "hi").status_code == 404
    assert _say(api, conversation, "").status_code == 422
    blank = _say(api, conversation, " \n\t ")
    assert blank.status_code == 422 and blank.json["error"]["details"]["fields"] == {
        "message": ["Must contain text, not only whitespace."]}
    assert api.post(f"/api/conversations/{conversation['id']}/messages", json={"message": 5}).status_code == 422
    assert _say(api, conversation, "hi", verbosity="loud").status_code == 422
    bad_json = api.post(f"/api/conversations/{conversation['id']}/messages", data="{", content_type="application/json")
    assert bad_json.status_code == 400 and bad_json.json["error"]["code"] == "invalid_json"
    bad_file = _say(api, conversation, "read this", attachments=[{"filename": "a.txt", "data": "%%%"}])
    assert bad_file.status_code == 400 and bad_file.json["error"]["details"]["reason"] == "invalid_base64"
    api.put(f"/api/agents/{agent['id']}", json={"status": "inactive"})
    inactive = _say(api, conversation, "hi")
    assert inactive.status_code == 409 and inactive.json["error"]["code"] == "agent_inactive"
    assert llm.posts == []
    count = db.session.execute(select(func.count()).select_from(Message)).scalar_one()
    assert count == 0  # nothing refused was stored


def test_prompts_are_kept_within_a_small_context_window(api, llm):
    model = api.post("/api/models", json={"name": "tiny", "provider": "openai_compatible", "model_id": "tiny",
                                          "kind": "chat", "endpoint": llm.base_url, "api_key": "sk-test",
                                          "context_window": 4000}).json["data"]
    agent = _agent(api, model, [], max_tokens=200)
    conversation = _conversation(api, agent)

    # Chinese is about a token a character: attachments are measured in tokens (a third of the window).
    chinese = base64.b64encode(("退款将在申请后十四天内处理。" * 350).encode()).decode()
    llm.script(Reply("收到。"))
    res = _say(api, conversation, "Read this.", attachments=[{"filename": "退款.txt", "data": chinese}])
    assert res.status_code == 200, res.json
    prompt = [ChatMessage(role=m["role"], content=m["content"]) for m in llm.posts[-1].body["messages"]]
    assert estimate_prompt_tokens(prompt) <= 4000 // 3 + 100 and "退款将在" in prompt[0].content

    too_long = _say(api, conversation, "word " * 4000)
    assert too_long.status_code == 422 and too_long.json["error"]["code"] == "context_window_exceeded"
    assert too_long.json["error"]["details"]["budget_tokens"] == 3800 and len(llm.posts) == 1  # never sent
    saved = api.get(f"/api/conversations/{conversation['id']}").json["data"]["messages"]
    assert saved[-1]["status"] == "failed" and saved[-1]["error"]["code"] == "context_window_exceeded"


def test_anthropic_tool_use_conversation(api, llm, kb_tool):
    model = api.post("/api/models", json={"name": "fake-claude", "provider": "anthropic", "model_id": "claude-x",
                                          "kind": "chat", "endpoint": llm.root_url, "api_key": "sk-ant"}).json["data"]
    agent = _agent(api, model, [kb_tool])
    conversation = _conversation(api, agent)
    llm.script(ToolCallReply("query", {"query": "VPN rules"}, call_id="toolu_1", text="Checking."),
               Reply("Use the VPN outside the office [1]."))
    events = sse_events(_say(api, conversation, "VPN?", stream=True, verbosity="full").get_data(as_text=True))
    completed = [e for e in events if e["event"] == "message.completed"][0]
    assert completed["content"] == "Use the VPN outside the office [1]."
    assert completed["citations"][0]["source"] == "security.md"
    second = llm.posts[1]
    assert second.path == "/v1/messages" and second.body["tools"][0]["name"] == "query"
    blocks = second.body["messages"][-1]["content"]
    assert blocks[0]["type"] == "tool_result" and blocks[0]["tool_use_id"] == "toolu_1"
    assert json.dumps(second.body["messages"][-2]["content"]).count("tool_use") == 1


def test_tools_missing_from_the_database_are_left_out_not_fatal(api, llm, chat_model, kb_tool):
    from app.models import Agent

    agent = _agent(api, chat_model, [kb_tool])
    conversation = _conversation(api, agent)
    row = db.session.get(Agent, agent["id"])
    row.tools = ["rag_gone_by_hand", kb_tool["id"]]  # a hand-edited database: the API refuses unknown ids
    db.session.commit()
    llm.script(Reply("Still answering."))
    answer = _say(api, conversation, "Hi")
    assert answer.status_code == 200 and answer.json["data"]["content"] == "Still answering."
    assert [t["function"]["name"] for t in llm.posts[0].body["tools"]] == ["query"]
    refused = api.put(f"/api/agents/{agent['id']}", json={"tools": ["rag_gone_by_hand"]})
    assert refused.status_code == 422 and refused.json["error"]["details"]["unknown_tools"] == ["rag_gone_by_hand"]


def test_one_turn_at_a_time_per_conversation(api, llm, chat_model):
    agent = _agent(api, chat_model, [])
    conversation = _conversation(api, agent)
    other = _conversation(api, agent, user_id="u2")
    llm.script(Sleep(1.5, then=Reply("first answer")), Reply("other conversation"), Reply("second answer"))
    res = api.post(f"/api/conversations/{conversation['id']}/messages",
                   json={"message": "one", "stream": True}, buffered=False)
    assert b"message.started" in next(iter(res.response))
    wait_for(lambda: len(llm.posts), lambda n: n == 1)  # the first turn has taken the slow reply
    busy = _say(api, conversation, "two")
    assert busy.status_code == 409 and busy.json["error"]["code"] == "turn_in_progress"
    assert _say(api, other, "elsewhere").json["data"]["content"] == "other conversation"  # others are free
    assert "first answer" in b"".join(res.response).decode()
    assert _say(api, conversation, "two").json["data"]["content"] == "second answer"
    contents = [m["content"] for m in api.get(f"/api/conversations/{conversation['id']}").json["data"]["messages"]]
    assert contents == ["one", "first answer", "two", "second answer"]  # the refused message was not kept


def test_deleting_an_agent_deletes_its_conversations_but_not_the_ledger(api, llm, chat_model):
    agent = _agent(api, chat_model, [])
    conversation = _conversation(api, agent)
    llm.script(Reply("hello"))
    _say(api, conversation, "hi")
    assert api.delete(f"/api/agents/{agent['id']}").status_code == 200
    assert api.get(f"/api/conversations/{conversation['id']}").status_code == 404
    assert db.session.execute(select(func.count()).select_from(Message)).scalar_one() == 0
    assert len(_ledger(conversation["id"])) == 1  # what was spent stays accounted for


def test_a_long_answer_streams_while_the_provider_is_still_writing_it(api, llm, chat_model, kb_tool):
    from tests.support.fake_llm import GatedStream

    agent = _agent(api, chat_model, [kb_tool])  # tools offered: text is held until it is known to be an answer
    conversation = _conversation(api, agent)
    words = [f"word{n}" for n in range(80)]
    gate = threading.Event()
    watchdog = threading.Timer(10, gate.set)  # if nothing streams early, the provider finishes anyway
    watchdog.start()
    llm.script(GatedStream(" ".join(words), gate, after_words=60))  # 60 words: well over 200 characters
    res = api.post(f"/api/conversations/{conversation['id']}/messages",
                   json={"message": "Say many words", "stream": True}, buffered=False)
    chunks = iter(res.response)
    seen_before_gate = False
    for chunk in chunks:
        if b"text.chunk" in chunk:
            seen_before_gate = not gate.is_set()
            break
    gate.set()
    watchdog.cancel()
    events = sse_events(b"".join([chunk, *chunks]).decode())
    assert seen_before_gate, "the answer was held until the provider finished"
    completed = events[-2]
    assert completed["content"] == " ".join(words)
    assert "".join(e["delta"] for e in events if e["event"] == "text.chunk") == completed["content"]


def test_long_text_before_a_tool_call_stays_in_the_answer(api, llm, chat_model, kb_tool):
    agent = _agent(api, chat_model, [kb_tool])
    conversation = _conversation(api, agent)
    preamble = "Let me explain how refunds work before I look up the exact delay. " * 4  # > 200 characters
    llm.script(ToolCallReply("query", {"query": "refund delay"}, text=preamble), Reply("It is fourteen days [1]."))
    events = sse_events(_say(api, conversation, "Refunds?", stream=True, verbosity="full").get_data(as_text=True))
    completed = events[-2]
    # The preamble was already streamed as answer text when the tool call began: it stays in the answer.
    assert completed["content"] == (preamble + "\n\nIt is fourteen days [1].").strip()
    assert "".join(e["delta"] for e in events if e["event"] == "text.chunk").strip() == completed["content"]
    assert not [e for e in events if e["event"] == "thinking.chunk"]
    assert completed["citations"][0]["source"] == "faq.txt"
