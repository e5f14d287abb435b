"""The agents' leaderboard over a period: tasks, success, latency, cost, conversations, answers, evaluation.

Every number is a plain sum over stored rows, so anyone can recompute it:
- `tasks_completed` / `tasks_failed`: tasks that ended so in the period (by `finished_at`); a scheduled
  task counts by its latest run. `success_rate` = completed / (completed + failed); cancelled ones are not
  counted.
- `median_task_latency_ms`: the median of `finished_at - started_at` over the completed tasks.
- `cost`: the usage ledger rows of the agent's conversations (its turns, their tools and embeddings; a
  task's turn too) created in the period.
- `conversations`: the agent's conversations with a message in the period (as /api/analytics counts).
- `no_answer_rate`: the agent's answers (assistant messages) in the period that found no answer, over all.
- `evaluation`: the latest completed run of an evaluation targeting the agent (any time), with the mean of
  its metrics' scores.
Ranked by tasks completed, then success rate, then lower cost, then name.
"""
from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select

from app.extensions import db
from app.models import Agent, AgentTask, Conversation, Evaluation, EvaluationRun, Message, UsageRecord, utcnow
from app.services.usage_stats import Period, round_cost

PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30), "all": None}
RATE_DECIMALS = 4


def leaderboard(period_name: str = "week") -> dict[str, Any]:
    now = utcnow()
    span = PERIODS[period_name]
    period = Period(start=now - span if span else None, end=None)
    rows = [_row(agent, period) for agent in db.session.execute(select(Agent)).scalars()]
    rows.sort(key=lambda r: (-r["tasks_completed"], -(r["success_rate"] or 0), r["cost"], r["name"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return {"period": period_name, "start": period.start, "end": now, "agents": rows}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, RATE_DECIMALS) if whole else None


def _row(agent: Agent, period: Period) -> dict[str, Any]:
    finished = db.session.execute(
        select(AgentTask.status, AgentTask.started_at, AgentTask.finished_at)
        .where(AgentTask.agent_id == agent.id, AgentTask.status.in_(("completed", "failed")),
               *period.conditions(AgentTask.finished_at))).all()
    completed = [(end - start).total_seconds() * 1000 for status, start, end in finished
                 if status == "completed" and start is not None]
    failed = sum(1 for status, *_ in finished if status == "failed")
    of_agent = select(Conversation.id).where(Conversation.agent_id == agent.id)
    cost = db.session.execute(select(func.coalesce(func.sum(UsageRecord.cost), 0.0)).where(
        UsageRecord.conversation_id.in_(of_agent), *period.conditions(UsageRecord.created_at))).scalar_one()
    in_period = (Message.conversation_id.in_(of_agent), *period.conditions(Message.created_at))
    conversations = db.session.execute(select(func.count(func.distinct(Message.conversation_id)))
                                       .where(*in_period)).scalar_one()
    answers, no_answer = db.session.execute(select(
        func.count(Message.id), func.coalesce(func.sum(case((Message.no_answer.is_(True), 1), else_=0)), 0))
        .where(*in_period, Message.role == "assistant")).one()
    return {"agent_id": agent.id, "name": agent.name, "role": agent.role,
            "tasks_completed": len(completed), "tasks_failed": failed,
            "success_rate": _rate(len(completed), len(completed) + failed),
            "median_task_latency_ms": round(statistics.median(completed), 1) if completed else None,
            "cost": round_cost(float(cost)), "conversations": conversations,
            "no_answer_rate": _rate(int(no_answer), answers), "evaluation": _latest_evaluation(agent.id)}


def _latest_evaluation(agent_id: str) -> dict[str, Any] | None:
    run = db.session.execute(
        select(EvaluationRun).join(Evaluation, Evaluation.id == EvaluationRun.evaluation_id)
        .where(Evaluation.type == "agent", Evaluation.target_id == agent_id, EvaluationRun.status == "completed")
        .order_by(EvaluationRun.finished_at.desc()).limit(1)).scalar()
    if run is None:
        return None
    scores = [m["score"] for m in (run.metrics or {}).values() if isinstance(m, dict) and m.get("score") is not None]
    return {"evaluation_id": run.evaluation_id, "run_id": run.id, "finished_at": run.finished_at,
            "score": round(statistics.fmean(scores), RATE_DECIMALS) if scores else None,
            "metrics": {name: m.get("score") for name, m in (run.metrics or {}).items() if isinstance(m, dict)}}
