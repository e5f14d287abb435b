"""Agent tasks through the HTTP API, run by the real job consumer, with the fake LLM server as provider.

Real parts everywhere else: a synced folder, the embedding model, Chroma, the database, the ledger.
"""
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Agent, AgentTask, Conversation, UsageRecord, utcnow
from tests.conftest import wait_for
from tests.support.fake_llm import Reply, Sleep, Status, ToolCallReply

ENDED = ("completed", "failed", "cancelled")


def _agent(api, model, tools=(), **fields):
    res = api.post("/api/agents", json={"name": f"agent-{time.monotonic_ns()}", "model_id": model["id"],
                                        "tools": [t["id"] for t in tools], **fields})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _task(api, agent, title="Report", **fields):
    res = api.post("/api/tasks", json={"agent_id": agent["id"], "title": title,
                                       "instructions": fields.pop("instructions", "Do it."), **fields})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _get(api, task):
    return api.get(f"/api/tasks/{task['id']}").json["data"]


def _ended(api, task, timeout=60.0):
    return wait_for(lambda: _get(api, task), lambda t: t["status"] in ENDED, timeout=timeout)


def _wait_posts(llm, count):
    assert wait_for(lambda: len(llm.posts), lambda n: n >= count, timeout=60) >= count


def test_a_task_runs_as_a_cited_metered_turn_in_its_own_conversation(api, llm, chat_model, kb_tool, worker):
    agent = _agent(api, chat_model, [kb_tool])
    llm.script(ToolCallReply("query", {"query": "refund time"}, prompt_tokens=100, completion_tokens=8),
               Reply("Refunds take fourteen days [1].", prompt_tokens=300, completion_tokens=12))
    task = _task(api, agent, "Refund policy", instructions="Find how long refunds take.", priority="high")
    assert task["status"] in ("assigned", "in_progress") and task["priority"] == "high"

    done = _ended(api, task)
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["content"] == "Refunds take fourteen days [1]." and result["no_answer"] is False
    assert result["citations"][0]["source"] == "faq.txt"
    assert [c["name"] for c in result["tool_calls"]] == ["query"] and result["tool_calls"][0]["status"] == "ok"
    assert done["attempts"] == 1 and done["started_at"] <= done["finished_at"] and done["error"] is None
    # What the model was asked: the task's title and instructions, as the user's message.
    assert llm.posts[0].body["messages"][-1]["content"] == "Refund policy\n\nFind how long refunds take."

    # Visible: the task's conversation holds the turn; metered: its ledger rows carry the task's id.
    conversation = api.get(f"/api/conversations/{done['conversation_id']}").json["data"]
    assert conversation["agent_id"] == agent["id"]
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
    assert conversation["messages"][1]["id"] == result["message_id"]
    rows = db.session.execute(select(UsageRecord).where(UsageRecord.task_id == task["id"])).scalars().all()
    chat = [r for r in rows if r.operation == "chat"]
    assert [(r.prompt_tokens, r.completion_tokens) for r in chat] == [(100, 8), (300, 12)]
    assert all(r.conversation_id == done["conversation_id"] for r in rows)
    assert result["usage"]["cost"] == pytest.approx(sum(r.cost for r in rows))

    stats = api.get(f"/api/agents/{agent['id']}").json["data"]["task_stats"]
    assert stats == {"total": 1, "assigned": 0, "in_progress": 0, "completed": 1, "failed": 0}


def test_a_failing_provider_fails_the_task_with_its_reason(api, llm, chat_model, worker):
    agent = _agent(api, chat_model)
    llm.script(Status(400, "model is overloaded today"))
    done = _ended(api, _task(api, agent))
    assert done["status"] == "failed" and done["result"] is None
    assert done["error"]["code"] == "agent_error" and "answered HTTP 400" in done["error"]["message"]
    # The failed turn is in the task's conversation too.
    messages = api.get(f"/api/conversations/{done['conversation_id']}").json["data"]["messages"]
    assert messages[-1]["status"] == "failed" and messages[-1]["id"] == done["error"]["message_id"]


def test_cancel_stops_a_running_task_and_its_turn(api, llm, chat_model, worker):
    agent = _agent(api, chat_model)
    llm.script(Sleep(1.5, then=Reply("Too late.")))
    task = _task(api, agent)
    _wait_posts(llm, 1)  # the turn is waiting for the model
    assert _get(api, task)["status"] == "in_progress"

    res = api.post(f"/api/tasks/{task['id']}/cancel")
    assert res.status_code == 200 and res.json["data"]["status"] == "cancelled"
    assert res.json["data"]["error"]["code"] == "cancelled"
    # The turn stops at its next step: its answer is saved as failed, never as the task's result.
    conversation_id = _get(api, task)["conversation_id"]
    last = wait_for(lambda: api.get(f"/api/conversations/{conversation_id}").json["data"]["messages"][-1],
                    lambda m: m["role"] == "assistant")
    assert last["status"] == "failed" and last["error"]["code"] == "task_cancelled"
    after = _get(api, task)
    assert after["status"] == "cancelled" and after["result"] is None

    again = api.post(f"/api/tasks/{task['id']}/cancel")
    assert again.status_code == 409 and again.json["error"]["code"] == "task_finished"
    # A cancelled task can be run again on demand.
    rerun = api.post(f"/api/tasks/{task['id']}/execute")
    assert rerun.status_code == 202
    done = _ended(api, task)
    assert done["status"] == "completed" and done["result"]["content"] == "ok"


def test_queue_runs_execute_first_then_priority_then_age(api, llm, chat_model, worker):
    agent = _agent(api, chat_model, status="inactive")  # holds its queue while the tasks are assigned
    made = [_task(api, agent, title) for title in ("low-1", "urgent", "medium", "low-2", "high", "pick-me")]
    for task, priority in zip(made, ("low", "urgent", "medium", "low", "high", "low"), strict=True):
        assert api.put(f"/api/tasks/{task['id']}", json={"priority": priority}).status_code == 200
    pending = api.get(f"/api/agents/{agent['id']}/heartbeat").json["data"]["pending_tasks"]
    assert [t["title"] for t in pending] == ["urgent", "high", "medium", "low-1", "low-2", "pick-me"]

    assert api.put(f"/api/agents/{agent['id']}", json={"status": "active"}).status_code == 200
    assert api.post(f"/api/tasks/{made[-1]['id']}/execute").status_code == 202  # also starts the queue
    for task in made:
        assert _ended(api, task)["status"] == "completed"
    asked = [p.body["messages"][-1]["content"].split("\n")[0] for p in llm.posts]
    assert asked == ["pick-me", "urgent", "high", "medium", "low-1", "low-2"]


@pytest.mark.parametrize("limit", [1, 2])
def test_an_agent_runs_at_most_its_max_concurrent_tasks(api, llm, chat_model, worker, limit):
    agent = _agent(api, chat_model, max_concurrent_tasks=limit)
    llm.script(Sleep(2.0), Sleep(2.0))
    made = [_task(api, agent, f"t{i}") for i in range(2)]
    _wait_posts(llm, 1)
    seen = []
    while len(llm.posts) < 2:  # watch until the second task's turn has asked the model
        seen.append(sorted(_get(api, t)["status"] for t in made))
        time.sleep(0.05)
    seen.append(sorted(_get(api, t)["status"] for t in made))
    running_at_once = max(statuses.count("in_progress") for statuses in seen)
    assert running_at_once == limit, seen
    for task in made:
        assert _ended(api, task)["status"] == "completed"


def test_the_global_bound_holds_across_agents(app, api, llm, chat_model, worker):
    config = app.extensions["magnet.config"]
    saved, config.max_running_tasks = config.max_running_tasks, 1
    try:
        agents = [_agent(api, chat_model, max_concurrent_tasks=2) for _ in range(2)]
        llm.script(Sleep(0.8), Sleep(0.8))
        made = [_task(api, agent) for agent in agents]
        _wait_posts(llm, 1)
        most = 0
        while not all(_get(api, t)["status"] in ENDED for t in made):
            db.session.expire_all()
            most = max(most, db.session.query(AgentTask).filter(AgentTask.status == "in_progress").count())
            time.sleep(0.05)
        assert most == 1
        assert [_get(api, t)["status"] for t in made] == ["completed", "completed"]
    finally:
        config.max_running_tasks = saved


def test_presence_follows_tasks_turns_failures_and_inactivity(api, llm, chat_model, worker):
    agent = _agent(api, chat_model)
    presence = lambda: api.get(f"/api/agents/{agent['id']}").json["data"]["presence"]  # noqa: E731
    assert presence() == "online"

    llm.script(Sleep(1.0))
    task = _task(api, agent)
    _wait_posts(llm, 1)
    assert presence() == "busy"
    assert _ended(api, task)["status"] == "completed"
    assert presence() == "online"

    llm.script(Status(400, "broken"))
    assert _ended(api, _task(api, agent))["status"] == "failed"
    assert presence() == "error"
    listed = api.get("/api/agents?presence=error").json
    assert [a["id"] for a in listed["data"]] == [agent["id"]] and listed["pagination"]["total"] == 1

    # A conversation mid-turn makes it busy too (the error shows again once the turn is answered).
    llm.script(Sleep(1.0, then=Reply("Hello.")))
    conversation = api.post("/api/conversations", json={"agent_id": agent["id"]}).json["data"]
    chat = threading.Thread(target=lambda: api.post(f"/api/conversations/{conversation['id']}/messages",
                                                    json={"message": "Hi"}))
    chat.start()
    assert wait_for(presence, lambda p: p == "busy", timeout=10) == "busy"
    chat.join()
    assert presence() == "error"

    assert _ended(api, _task(api, agent))["status"] == "completed"  # the next success clears the error
    assert presence() == "online"

    # Quiet for longer than the idle and offline limits (by its recorded times, as real time would).
    for hours, expected in ((0.5, "idle"), (3, "offline")):
        past = utcnow() - timedelta(hours=hours)
        db.session.query(Agent).filter(Agent.id == agent["id"]).update(
            {"last_activity_at": past, "last_seen_at": past, "created_at": past})
        db.session.query(Conversation).filter(Conversation.agent_id == agent["id"]).update({"last_message_at": past})
        db.session.commit()
        assert presence() == expected
    assert api.put(f"/api/agents/{agent['id']}", json={"status": "inactive"}).status_code == 200
    assert presence() == "offline"
    assert [a["id"] for a in api.get("/api/agents?presence=offline").json["data"]] == [agent["id"]]


def test_heartbeat_and_wake_show_and_start_pending_work(api, llm, chat_model, worker):
    agent = _agent(api, chat_model, role="triage", status="inactive")
    task = _task(api, agent, "Wake me")
    beat = api.get(f"/api/agents/{agent['id']}/heartbeat").json["data"]
    assert [t["id"] for t in beat["pending_tasks"]] == [task["id"]] and beat["unread_messages"] == []
    assert beat["last_seen"] is None

    assert api.put(f"/api/agents/{agent['id']}", json={"status": "active"}).status_code == 200
    woken = api.post(f"/api/agents/{agent['id']}/wake", json={"reason": "new orders arrived"})
    assert woken.status_code == 200, woken.json
    data = woken.json["data"]
    assert data["wake_reason"] == "new orders arrived" and data["woken_at"] and data["queued"] == 1
    assert _ended(api, task)["status"] == "completed"
    shown = api.get(f"/api/agents/{agent['id']}").json["data"]
    assert shown["last_seen"] and shown["last_activity"] and shown["last_wake_reason"] == "new orders arrived"
    assert [a["id"] for a in api.get("/api/agents?role=triage").json["data"]] == [agent["id"]]

    beat = api.post(f"/api/agents/{agent['id']}/heartbeat")
    assert beat.status_code == 200 and beat.json["data"]["pending_tasks"] == [] and beat.json["data"]["queued"] == 0


def test_bad_input_gets_the_error_envelope(api, chat_model):
    agent = _agent(api, chat_model)
    cases = [
        ({"agent_id": "agent_nope", "title": "x", "instructions": "y"}, "agent_id"),
        ({"agent_id": agent["id"], "title": "x", "instructions": "y", "priority": "asap"}, "priority"),
        ({"agent_id": agent["id"], "title": "x", "instructions": "y", "schedule": {"cron": "61 * * * *"}},
         "schedule.cron"),
        ({"agent_id": agent["id"], "title": "x", "instructions": "y", "schedule": {"interval_minutes": 1}},
         "schedule.interval_minutes"),
        ({"agent_id": agent["id"], "title": "", "instructions": "y"}, "title"),
        ({"agent_id": agent["id"], "title": "x", "instructions": "y", "due_at": "tomorrow"}, "due_at"),
    ]
    for body, field in cases:
        res = api.post("/api/tasks", json=body)
        assert res.status_code == 422, (body, res.json)
        assert res.json["success"] is False and field in str(res.json["error"]["details"]), res.json
    assert api.get("/api/tasks/task_nope").status_code == 404
    assert api.post("/api/tasks/task_nope/cancel").json["error"]["code"] == "not_found"
    assert api.get("/api/tasks?priority=asap").status_code == 422
    assert api.get("/api/tasks?since=yesterday").status_code == 422
    assert api.get("/api/agents/agent_nope/heartbeat").status_code == 404
    assert api.post(f"/api/agents/{agent['id']}/wake", json={}).status_code == 422
    assert api.get("/api/agents/leaderboard?period=decade").status_code == 422
    assert api.get("/api/agents?presence=asleep").status_code == 422


def test_task_crud_filters_and_roles(api, make_key, chat_model):
    agent = _agent(api, chat_model, status="inactive")  # nothing runs: the tasks stay assigned
    other = _agent(api, chat_model, status="inactive")
    first = _task(api, agent, "first", priority="low", due_at="2030-01-01T00:00:00Z")
    second = _task(api, other, "second", priority="urgent", schedule={"cron": "0 3 * * *"})
    assert first["due_at"] == "2030-01-01T00:00:00Z" and second["next_run_at"]

    titles = lambda query: [t["title"] for t in api.get(f"/api/tasks?{query}").json["data"]]  # noqa: E731
    assert titles(f"agent_id={agent['id']}") == ["first"]
    assert titles("priority=urgent") == ["second"]
    assert titles("status=assigned&sort=priority_rank&order=desc") == ["second", "first"]
    assert titles(f"since={second['created_at']}") == ["second"]
    page = api.get("/api/tasks?limit=1&page=2&order=asc").json
    assert [t["title"] for t in page["data"]] == ["second"] and page["pagination"] == {"page": 2, "limit": 1, "total": 2,
                                                                                             "next_cursor": None}

    viewer, operator = make_key("viewer"), make_key("operator")
    assert api.get("/api/tasks", key=viewer).status_code == 200
    denied = api.post("/api/tasks", key=viewer, json={"agent_id": agent["id"], "title": "x", "instructions": "y"})
    assert denied.status_code == 403
    changed = api.put(f"/api/tasks/{first['id']}", key=operator, json={"title": "renamed", "priority": "high"})
    assert changed.status_code == 200 and changed.json["data"]["priority"] == "high"
    assert api.delete(f"/api/tasks/{first['id']}", key=operator).status_code == 200
    assert api.get(f"/api/tasks/{first['id']}").status_code == 404
    assert api.get("/api/status").json["data"]["counts"]["agent_tasks"] == 1


def test_a_scheduled_task_waits_for_its_time_and_runs_again_when_due(api, llm, chat_model, worker):
    from app.services import periodic

    agent = _agent(api, chat_model)
    task = _task(api, agent, "Daily digest", schedule={"interval_minutes": 60})
    assert task["status"] == "assigned" and task["next_run_at"] > task["created_at"]
    assert api.get(f"/api/agents/{agent['id']}/heartbeat").json["data"]["pending_tasks"] == []

    for run in (1, 2):  # its time comes (moved back, as the clock would move forward), and the tick runs
        llm.script(Reply(f"Digest number {run}."))
        db.session.query(AgentTask).filter(AgentTask.id == task["id"]).update(
            {"next_run_at": utcnow() - timedelta(seconds=1)})
        db.session.commit()
        periodic.run_agent_tasks()
        done = wait_for(lambda: _get(api, task),
                        lambda t, run=run: t["status"] == "completed" and t["result"]["content"].endswith(f"{run}."))
        assert done["result"]["content"] == f"Digest number {run}."
        assert done["next_run_at"] > done["started_at"]  # the next time, an interval after this run
    messages = api.get(f"/api/conversations/{done['conversation_id']}").json["data"]["messages"]
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["Digest number 1.", "Digest number 2."]


def test_a_task_whose_heartbeat_went_stale_is_retried_then_failed(app, api, chat_model):
    from app.services import task_runner

    agent = _agent(api, chat_model, status="inactive")  # nothing picks the retried task up here
    task = _task(api, agent, max_attempts=2)
    stale = utcnow() - timedelta(seconds=app.extensions["magnet.config"].run_stale_seconds + 5)
    for attempts, status, words in ((1, "assigned", "It will be tried again."), (2, "failed", "No attempts are left.")):
        db.session.query(AgentTask).filter(AgentTask.id == task["id"]).update(
            {"status": "in_progress", "attempts": attempts, "heartbeat_at": stale})
        db.session.commit()
        assert task_runner.recover_lost_tasks() == [task["id"]]
        shown = _get(api, task)
        assert shown["status"] == status and shown["error"]["code"] == "worker_lost"
        assert shown["error"]["message"].endswith(words)
    # A fresh heartbeat is a live worker: left alone.
    db.session.query(AgentTask).filter(AgentTask.id == task["id"]).update(
        {"status": "in_progress", "heartbeat_at": utcnow()})
    db.session.commit()
    assert task_runner.recover_lost_tasks() == []
