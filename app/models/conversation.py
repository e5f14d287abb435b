"""Conversations with agents: their messages, attachments, and the app integrations that open them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column, utcnow

MESSAGE_ROLES = ("user", "assistant")
# An assistant message is `completed`, or stored with the error that ended its turn.
MESSAGE_STATUSES = ("completed", "failed", "timeout")


class Integration(TimestampMixin, Base):
    """An application's access to one agent through `POST /api/v1/messages`."""

    __tablename__ = "integrations"

    id: Mapped[str] = id_column("int")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    # RESTRICT: an agent an application depends on cannot vanish under it; the service explains the 409.
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="RESTRICT"), index=True)
    key_prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    daily_credit_limit: Mapped[float | None] = mapped_column(Float)  # cost per UTC day; None: no limit
    last_used_at: Mapped[datetime | None]


class Conversation(TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("integration_id", "session_id"),)

    id: Mapped[str] = id_column("conv")
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # Set when an app integration opened it; its session_id is how the app names it.
    integration_id: Mapped[str | None] = mapped_column(ForeignKey("integrations.id", ondelete="SET NULL"))
    session_id: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(300))
    message_count: Mapped[int] = mapped_column(default=0)
    last_message_at: Mapped[datetime | None]


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_created", "conversation_id", "created_at"),)

    id: Mapped[str] = id_column("msg")
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text, default="")
    # [{"id", "name", "tool_id", "arguments", "status", "output", "error", "latency_ms"}]
    tool_calls: Mapped[list] = mapped_column(default=list)
    citations: Mapped[list] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="completed")
    error: Mapped[dict | None]
    no_answer: Mapped[bool] = mapped_column(default=False)
    model_name: Mapped[str | None] = mapped_column(String(300))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ConversationAttachment(Base):
    """A file sent with a message; its extracted text is context for the rest of the conversation."""

    __tablename__ = "conversation_attachments"

    id: Mapped[str] = id_column("att")
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str | None] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
