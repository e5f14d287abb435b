"""Swarm sessions: several agents working one goal in parallel, each in a conversation of its own, and a
synthesis of their work; read-only share links to a swarm's results.

A swarm's cost is what the usage ledger holds for its conversations: every member turn (and the
coordinator's planning and synthesis turns) runs in a conversation recorded here, and the ledger tags
each row with its conversation (app.services.usage.metering), so the rows of a swarm are
`usage_records.conversation_id IN (its members' and its coordinator's conversations)`.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column, utcnow

SWARM_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE_SWARM_STATUSES = ("queued", "running")
# pending: not started yet; skipped: never started (budget spent, cancelled, or the worker was lost).
MEMBER_STATUSES = ("pending", "running", "completed", "failed", "skipped", "cancelled")


class Swarm(TimestampMixin, Base):
    __tablename__ = "swarms"

    id: Mapped[str] = id_column("swarm")
    goal: Mapped[str] = mapped_column(Text)
    # No foreign keys to agents: a swarm's record outlives the agents it used; names are kept.
    coordinator_agent_id: Mapped[str | None] = mapped_column(String(40))
    coordinator_name: Mapped[str | None] = mapped_column(String(200))
    coordinator_conversation_id: Mapped[str | None] = mapped_column(String(40))
    agents: Mapped[list] = mapped_column(default=list)  # [{"id", "name", "conversation_id"}] in order
    max_rounds: Mapped[int] = mapped_column(default=1)
    max_parallel: Mapped[int] = mapped_column(default=2)
    budget_usd: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    # Why it ended as it did: budget_exhausted, cancelled, worker_lost, error, or None (it ran to the end).
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str | None] = mapped_column(Text)
    rounds_done: Mapped[int] = mapped_column(default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    synthesis: Mapped[str | None] = mapped_column(Text)
    synthesis_by: Mapped[str | None] = mapped_column(String(20))  # coordinator, merge
    # [{"index": n, "member_id", "agent_name", "round"}]: what [n] in the synthesis stands for
    citations: Mapped[list] = mapped_column(default=list)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    api_key_id: Mapped[str | None] = mapped_column(String(40))
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class SwarmMember(Base):
    """One agent's work in one round of a swarm."""

    __tablename__ = "swarm_members"
    __table_args__ = (Index("ix_swarm_members_swarm_round", "swarm_id", "round", "position"),)

    id: Mapped[str] = id_column("swm")
    swarm_id: Mapped[str] = mapped_column(ForeignKey("swarms.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(default=1)
    position: Mapped[int] = mapped_column(default=0)
    agent_id: Mapped[str] = mapped_column(String(40), index=True)
    agent_name: Mapped[str] = mapped_column(String(200))
    conversation_id: Mapped[str | None] = mapped_column(String(40))
    subtask: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[dict | None]  # {"code", "message"}
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SwarmShare(Base):
    """A read-only link to a swarm's results. The token is signed (app secret) and carries this row's id;
    the row, shared by every node, says whether the link still works (expiry, revocation)."""

    __tablename__ = "swarm_shares"

    id: Mapped[str] = id_column("share")
    swarm_id: Mapped[str] = mapped_column(ForeignKey("swarms.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(40))  # the API key id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
