"""Agent presence, derived from real state on every read (nothing to keep in sync, nothing to go stale).

Rules, first match wins (`now` is the time of the read):
1. `offline`: the agent's status is `inactive`.
2. `busy`: one of its tasks is `in_progress`, or one of its conversations is mid-turn (its latest message
   is a user's, sent within the agent's turn timeout: the answer is saved when the turn ends).
3. `error`: its latest finished task (completed or failed, by finish time) failed; the next task that
   completes clears it.
4. `offline`: no activity for MAGNET_AGENT_OFFLINE_SECONDS (default 3600). Activity is the latest of: a
   task started or finished, a wake, a message in one of its conversations; an agent never active counts
   from its creation.
5. `idle`: no activity for MAGNET_AGENT_IDLE_SECONDS (default 300); otherwise `online`.

`last_seen` is the last check-in: a heartbeat POST, a wake, a worker running one of its tasks, or a
message in one of its conversations.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Agent, AgentTask, Conversation, Message, utcnow
from app.services import agents, tasks
from app.services.agent_inbox import queue_processing, unread_messages_for

PRESENCES = ("online", "idle", "busy", "offline", "error")
STAT_STATUSES = ("assigned", "in_progress", "completed", "failed")


def _fields(agent: Agent) -> dict[str, Any]:
    return {column.key: getattr(agent, column.key) for column in Agent.__table__.columns}


def describe(agent_rows: list[Agent], now: datetime | None = None) -> list[dict[str, Any]]:
    """The agents as the API shows them: their fields plus presence, last_seen, last_activity, task_stats."""
    now = now or utcnow()
    ids = [a.id for a in agent_rows]
    if not ids:
        return []
    stats = _task_stats(ids)
    failing = _last_task_failed(ids)
    last_message, mid_turn = _conversation_state(agent_rows, now)
    config = current_app.extensions["magnet.config"]
    described = []
    for agent in agent_rows:
        activity = _latest(agent.last_activity_at, last_message.get(agent.id))
        seen = _latest(agent.last_seen_at, last_message.get(agent.id))
        quiet = (now - (activity or agent.created_at)).total_seconds()
        if agent.status == "inactive":
            presence = "offline"
        elif stats[agent.id]["in_progress"] or agent.id in mid_turn:
            presence = "busy"
        elif failing.get(agent.id):
            presence = "error"
        elif quiet > config.agent_offline_seconds:
            presence = "offline"
        else:
            presence = "idle" if quiet > config.agent_idle_seconds else "online"
        described.append({**_fields(agent), "presence": presence, "last_seen": seen, "last_activity": activity,
                          "task_stats": stats[agent.id]})
    return described


def describe_one(agent: Agent) -> dict[str, Any]:
    return describe([agent])[0]


def list_agents(args: dict) -> dict:
    """agents.list_agents plus presence; the `presence` filter (derived, so applied here) pages in Python."""
    if not args.get("presence"):
        page = agents.list_agents(args)
        page["data"] = describe(page["data"])
        return page
    everything = agents.list_agents({**args, "page": 1, "limit": 10**9})["data"]
    matching = [a for a in describe(everything) if a["presence"] == args["presence"]]
    start = (args["page"] - 1) * args["limit"]
    return {"success": True, "data": matching[start:start + args["limit"]],
            "pagination": {"page": args["page"], "limit": args["limit"], "total": len(matching)}}


def _task_stats(ids: list[str]) -> dict[str, dict[str, int]]:
    stats = {agent_id: {"total": 0, **{status: 0 for status in STAT_STATUSES}} for agent_id in ids}
    rows = db.session.execute(select(AgentTask.agent_id, AgentTask.status, func.count())
                              .where(AgentTask.agent_id.in_(ids)).group_by(AgentTask.agent_id, AgentTask.status))
    for agent_id, status, count in rows:
        stats[agent_id]["total"] += count
        if status in STAT_STATUSES:
            stats[agent_id][status] += count
    return stats


def _last_task_failed(ids: list[str]) -> dict[str, bool]:
    """Per agent: whether its latest finished (completed or failed) task failed."""
    latest = (select(AgentTask.agent_id, func.max(AgentTask.finished_at).label("at"))
              .where(AgentTask.agent_id.in_(ids), AgentTask.status.in_(("completed", "failed")))
              .group_by(AgentTask.agent_id).subquery())
    rows = db.session.execute(select(AgentTask.agent_id, AgentTask.status).join(
        latest, (AgentTask.agent_id == latest.c.agent_id) & (AgentTask.finished_at == latest.c.at))
        .where(AgentTask.status.in_(("completed", "failed"))))
    failing: dict[str, bool] = {}
    for agent_id, status in rows:  # two tasks finishing at the same instant: a success wins
        failing[agent_id] = failing.get(agent_id, True) and status == "failed"
    return failing


def _conversation_state(agent_rows: list[Agent], now: datetime) -> tuple[dict[str, datetime], set[str]]:
    """Per agent: its latest conversation message time; and the agents with a conversation mid-turn."""
    ids = [a.id for a in agent_rows]
    last = dict(db.session.execute(select(Conversation.agent_id, func.max(Conversation.last_message_at))
                                   .where(Conversation.agent_id.in_(ids)).group_by(Conversation.agent_id)).all())
    longest = max(a.turn_timeout_seconds for a in agent_rows)
    recent = db.session.execute(select(Conversation.id, Conversation.agent_id).where(
        Conversation.agent_id.in_(ids), Conversation.last_message_at >= now - timedelta(seconds=longest))).all()
    timeout = {a.id: a.turn_timeout_seconds for a in agent_rows}
    mid_turn = set()
    for conversation_id, agent_id in recent:
        role, at = db.session.execute(select(Message.role, Message.created_at)
                                      .where(Message.conversation_id == conversation_id)
                                      .order_by(Message.created_at.desc(), Message.id.desc()).limit(1)).first() or (None, None)
        if role == "user" and at >= now - timedelta(seconds=timeout[agent_id]):
            mid_turn.add(agent_id)
    return {k: v for k, v in last.items() if v is not None}, mid_turn


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# -- heartbeat and wake ------------------------------------------------------------------------------


def heartbeat(agent_id: str) -> dict[str, Any]:
    """What waits for the agent: its pending tasks (in the order they will run) and unread messages."""
    agent = agents.get_agent(agent_id)
    described = describe_one(agent)
    return {"agent_id": agent.id, "presence": described["presence"], "last_seen": described["last_seen"],
            "pending_tasks": tasks.pending_tasks(agent.id), "unread_messages": unread_messages_for(agent.id),
            "task_stats": described["task_stats"]}


def check_in(agent_id: str, *, wake_reason: str | None = None) -> dict[str, Any]:
    """The agent checks in (a heartbeat POST, or a wake with its reason): seen now, its pending tasks are
    queued for execution at once (within its bounds) and its unread messages for answering. A wake also
    counts as activity."""
    agent = agents.get_agent(agent_id)
    now = utcnow()
    values: dict[str, Any] = {"last_seen_at": now}
    if wake_reason is not None:
        values.update(last_activity_at=now, last_wake_reason=wake_reason, last_woken_at=now)
    db.session.execute(update(Agent).where(Agent.id == agent.id).values(**values))
    db.session.commit()
    queued = tasks.dispatch(agent.id)
    messages_queued = queue_processing(agent.id)
    db.session.refresh(agent)
    return {**heartbeat(agent.id), "queued": len(queued), "messages_queued": messages_queued,
            "woken_at": agent.last_woken_at,
            "wake_reason": agent.last_wake_reason}
