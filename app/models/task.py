"""Tasks given to agents: instructions an agent carries out as a turn in a conversation of its own.

A task moves `assigned -> in_progress -> completed | failed | cancelled` (app.services.tasks). One with a
`schedule` is carried out again whenever it is due (`next_run_at`): the periodic tick puts it back to
`assigned`, and `result` always holds its latest run.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column

TASK_STATUSES = ("assigned", "in_progress", "completed", "failed", "cancelled")
TASK_PRIORITIES = ("low", "medium", "high", "urgent")
# Higher runs first; stored beside the name so the queue order is one indexed ORDER BY.
PRIORITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}


class AgentTask(TimestampMixin, Base):
    __tablename__ = "agent_tasks"
    __table_args__ = (Index("ix_agent_tasks_queue", "agent_id", "status", "priority_rank", "created_at"),)

    id: Mapped[str] = id_column("task")
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300))
    instructions: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(10), default="medium")
    priority_rank: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(20), default="assigned", index=True)
    due_at: Mapped[datetime | None]
    schedule: Mapped[dict | None]  # {"interval_minutes": N} or {"cron": "..."}, as knowledge sources
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)  # a scheduled task waits until then
    # POST /execute: ahead of the agent's queue, whatever its priority.
    run_now: Mapped[bool] = mapped_column(default=False)
    conversation_id: Mapped[str | None] = mapped_column(String(40))  # made on the first run
    result: Mapped[dict | None]  # the answer: message_id, content, citations, tool_calls, no_answer, usage
    error: Mapped[dict | None]  # {"code", "message"} of the last failure
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=2)  # runs a lost worker may cost before it fails
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
