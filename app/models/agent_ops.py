"""What agents keep between turns and say to each other: soul versions, memory notes, messages."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column, utcnow

AGENT_MESSAGE_TYPES = ("message", "question", "request", "reply")


class AgentSoulVersion(Base):
    """One version of an agent's system prompt; the agent runs on the latest (also kept on `agents`)."""

    __tablename__ = "agent_soul_versions"
    __table_args__ = (UniqueConstraint("agent_id", "version", name="uq_agent_soul_versions_version"),)

    id: Mapped[str] = id_column("soul")
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    system_prompt: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentNote(TimestampMixin, Base):
    """A note in an agent's memory, found again by the `recall` tool and added to its prompts."""

    __tablename__ = "agent_notes"
    __table_args__ = (UniqueConstraint("agent_id", "key", name="uq_agent_notes_key"),)

    id: Mapped[str] = id_column("note")
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(default=1)


class AgentNoteVersion(Base):
    """Every change to a note (put or delete), kept after the note itself is deleted."""

    __tablename__ = "agent_note_versions"

    id: Mapped[str] = id_column("notev")
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int]
    action: Mapped[str] = mapped_column(String(10))  # put | delete
    text: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(default=list)
    changed_by: Mapped[str] = mapped_column(String(10))  # api | agent (the remember tool)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AgentMessage(Base):
    """A message from one agent to another; unread until the recipient processes (or reads) it."""

    __tablename__ = "agent_messages"

    id: Mapped[str] = id_column("amsg")
    sender_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(20), default="message")
    content: Mapped[str] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(String(40), index=True)
    read_at: Mapped[datetime | None]
    error: Mapped[dict | None]  # why processing it failed, if it did
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
