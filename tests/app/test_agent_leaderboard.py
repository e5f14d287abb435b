"""The agents' leaderboard: every number recomputed here by hand from the tasks, messages and ledger rows."""
import statistics
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AgentTask, Conversation, Message, UsageRecord, utcnow
from tests.conftest import wait_for
from tests.support.fake_llm import Reply, Sleep, Status


def _agent(api, model, name):
    res = api.post("/api/agents", json={"name": name, "model_id": model["id"], "max_concurrent_tasks": 1})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _run_task(api, agent, title):
    task = api.post("/api/tasks", json={"agent_id": agent["id"], "title": title, "instructions": "Go."}).json["data"]
    return wait_for(lambda: api.get(f"/api/tasks/{task['id']}").json["data"],
                    lambda t: t["status"] in ("completed", "failed", "cancelled"))


def _by_hand(agent_id, since):
    """The leaderboard's row for one agent, from the stored rows, with plain Python."""
    db.session.expire_all()
    tasks = db.session.execute(select(AgentTask).where(AgentTask.agent_id == agent_id)).scalars().all()
    inside = [t for t in tasks if t.finished_at and (since is None or t.finished_at >= since)]
    completed = [t for t in inside if t.status == "completed"]
    failed = [t for t in inside if t.status == "failed"]
    conversation_ids = set(db.session.execute(select(Conversation.id).where(Conversation.agent_id == agent_id)).scalars())
    rows = db.session.execute(select(UsageRecord)).scalars().all()
    cost = sum(r.cost for r in rows if r.conversation_id in conversation_ids and (since is None or r.created_at >= since))
    messages = [m for m in db.session.execute(select(Message)).scalars()
                if m.conversation_id in conversation_ids and (since is None or m.created_at >= since)]
    answers = [m for m in messages if m.role == "assistant"]
    latencies = [(t.finished_at - t.started_at).total_seconds() * 1000 for t in completed]
    return {
        "tasks_completed": len(completed), "tasks_failed": len(failed),
        "success_rate": round(len(completed) / (len(completed) + len(failed)), 4) if completed or failed else None,
        "median_task_latency_ms": round(statistics.median(latencies), 1) if latencies else None,
        "cost": pytest.approx(cost, abs=1e-6),
        "conversations": len({m.conversation_id for m in messages}),
        "no_answer_rate": round(sum(m.no_answer for m in answers) / len(answers), 4) if answers else None,
    }


def test_leaderboard_numbers_equal_sums_over_tasks_messages_and_ledger(api, llm, chat_model, worker):
    busy, steady, idle = (_agent(api, chat_model, f"{name}-{time.monotonic_ns()}") for name in ("busy", "steady", "idle"))
    llm.script(Sleep(0.2, then=Reply("Done one.", prompt_tokens=100, completion_tokens=20)),
               Reply("", prompt_tokens=50, completion_tokens=0),  # no answer
               Status(400, "broken"),
               Reply("Done two.", prompt_tokens=70, completion_tokens=9))
    assert [_run_task(api, busy, t)["status"] for t in ("a", "b", "c")] == ["completed", "completed", "failed"]
    assert _run_task(api, steady, "d")["status"] == "completed"
    # An old task of `steady`: outside the week, inside "all".
    llm.script(Reply("Old news.", prompt_tokens=10, completion_tokens=2))
    old = _run_task(api, steady, "old")
    long_ago = utcnow() - timedelta(days=10)
    db.session.query(AgentTask).filter(AgentTask.id == old["id"]).update(
        {"started_at": long_ago - timedelta(seconds=3), "finished_at": long_ago})
    db.session.query(Message).filter(Message.conversation_id == old["conversation_id"]).update({"created_at": long_ago})
    db.session.query(UsageRecord).filter(UsageRecord.task_id == old["id"]).update({"created_at": long_ago})
    db.session.commit()
    # A user's conversation with `busy`, and an evaluation of it.
    llm.script(Reply("Hello there.", prompt_tokens=30, completion_tokens=3))
    conversation = api.post("/api/conversations", json={"agent_id": busy["id"]}).json["data"]
    assert api.post(f"/api/conversations/{conversation['id']}/messages", json={"message": "Hi"}).status_code == 200
    llm.script(Reply("Refunds take fourteen days."))
    evaluation = api.post("/api/evaluations", json={
        "name": "busy suite", "type": "agent", "target_id": busy["id"], "metrics": ["token_f1"],
        "settings": {"concurrency": 1, "retries": 0},
        "test_cases": [{"input": "How long do refunds take?", "expected_output": "Refunds take fourteen days."}]})
    assert evaluation.status_code == 201, evaluation.json
    run = api.post(f"/api/evaluations/{evaluation.json['data']['id']}/run").json["data"]
    wait_for(lambda: api.get(f"/api/evaluations/{evaluation.json['data']['id']}/runs/{run['id']}").json["data"],
             lambda r: r["status"] not in ("queued", "running"))

    for period, since in (("week", utcnow() - timedelta(days=7)), ("all", None)):
        board = api.get(f"/api/agents/leaderboard?period={period}")
        assert board.status_code == 200, board.json
        rows = {row["agent_id"]: row for row in board.json["data"]["agents"]}
        for agent in (busy, steady, idle):
            row = rows[agent["id"]]
            assert {k: row[k] for k in _by_hand(agent["id"], since)} == _by_hand(agent["id"], since), (period, agent)
        # Week: busy completed 2, steady 1. All: both 2, and steady never failed.
        assert [r["agent_id"] for r in board.json["data"]["agents"]][:3] == (
            [busy["id"], steady["id"], idle["id"]] if period == "week" else [steady["id"], busy["id"], idle["id"]])
        assert [r["rank"] for r in board.json["data"]["agents"]] == list(range(1, len(rows) + 1))

    week = {row["agent_id"]: row for row in api.get("/api/agents/leaderboard").json["data"]["agents"]}
    assert week[busy["id"]]["tasks_completed"] == 2 and week[busy["id"]]["success_rate"] == round(2 / 3, 4)
    assert week[busy["id"]]["no_answer_rate"] > 0 and week[busy["id"]]["cost"] > 0
    assert week[steady["id"]]["tasks_completed"] == 1  # the old task is outside the week
    assert week[idle["id"]]["tasks_completed"] == 0 and week[idle["id"]]["success_rate"] is None
    assert week[busy["id"]]["evaluation"]["metrics"] == {"token_f1": 1.0}
    assert week[busy["id"]]["evaluation"]["score"] == 1.0 and week[steady["id"]]["evaluation"] is None
