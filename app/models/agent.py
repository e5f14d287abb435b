"""Agents: a model, a system prompt, the tools it may call and the limits of one turn (app.runtime.agent)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column

AGENT_STATUSES = ("active", "inactive", "draft")


class Agent(TimestampMixin, Base):
    __tablename__ = "agents"

    id: Mapped[str] = id_column("agent")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    # RESTRICT: a model in use by an agent cannot vanish under it; the service explains the 409.
    model_id: Mapped[str | None] = mapped_column(ForeignKey("llm_models.id", ondelete="RESTRICT"), index=True)
    temperature: Mapped[float] = mapped_column(Float, default=0.2)
    max_tokens: Mapped[int] = mapped_column(default=1024)
    tools: Mapped[list] = mapped_column(default=list)  # ids of RAG, retrieval and API tools
    topics: Mapped[list] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Runtime limits of one turn: model calls, seconds per tool call, seconds for the whole turn, and
    # how many earlier messages the agent remembers (fewer when they do not fit the context window).
    max_iterations: Mapped[int] = mapped_column(default=6)
    tool_timeout_seconds: Mapped[float] = mapped_column(Float, default=30.0)
    turn_timeout_seconds: Mapped[float] = mapped_column(Float, default=120.0)
    memory_messages: Mapped[int] = mapped_column(default=20)
    # The agent it reports to (app.services.agent_hierarchy refuses cycles); SET NULL: a manager's
    # deletion leaves its reports at the top of the tree.
    reports_to: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    # Tasks (app.services.tasks): how many of this agent's tasks may run at once.
    max_concurrent_tasks: Mapped[int] = mapped_column(default=1)
    # Presence (app.services.agent_presence): last check-in (heartbeat, wake, a worker running its task),
    # last work (a task, a wake), and why it was last woken.
    last_seen_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime | None]
    last_wake_reason: Mapped[str | None] = mapped_column(Text)
    last_woken_at: Mapped[datetime | None]
