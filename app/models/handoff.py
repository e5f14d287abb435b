"""Human hand-off: accounts of outside agents, their requests to people, and the reviewers' work on them.

An account is an accountable principal: it owns requests and its keys are platform `api_keys` rows of the
dedicated role `handoff`, which the auth hook lets reach no platform route (only /api/v1 hand-off routes,
which check the link in `handoff_keys`). A request also comes from Magnet's own agents (the built-in tool
`handoff_to_human`): then it has a conversation instead of an account, and the answer goes back into it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column, utcnow

HANDOFF_STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETED")


class HandoffAccount(TimestampMixin, Base):
    __tablename__ = "handoff_accounts"

    id: Mapped[str] = id_column("hacct")
    name: Mapped[str] = mapped_column(String(50), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    phone: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    telegram_user_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    # Signs webhook calls (HMAC-SHA256); encrypted at rest (app.crypto), shown once at registration.
    webhook_secret: Mapped[str] = mapped_column(Text)
    invitation_id: Mapped[str | None] = mapped_column(String(40))


class HandoffKey(Base):
    """Which account an `api_keys` row of role `handoff` belongs to, and its rate-limit window."""

    __tablename__ = "handoff_keys"

    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("handoff_accounts.id", ondelete="CASCADE"), index=True)
    window_start: Mapped[int] = mapped_column(default=0)  # epoch minute of the current window
    window_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HandoffInvitation(Base):
    """A one-use token an admin hands out; registration needs one unless it is open."""

    __tablename__ = "handoff_invitations"

    id: Mapped[str] = id_column("hinv")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str | None] = mapped_column(String(500))
    created_by_key_id: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by_account_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HandoffRequest(TimestampMixin, Base):
    __tablename__ = "handoff_requests"
    __table_args__ = (Index("ix_handoff_requests_account_updated", "account_id", "updated_at"),)

    id: Mapped[str] = id_column("hreq")
    account_id: Mapped[str | None] = mapped_column(ForeignKey("handoff_accounts.id", ondelete="CASCADE"))
    # Set when one of Magnet's agents handed off: the answer is appended to this conversation.
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"),
                                                        index=True)
    title: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text)
    objective: Mapped[str] = mapped_column(Text)
    max_minutes: Mapped[int] = mapped_column(default=60)
    relaxed: Mapped[bool] = mapped_column(default=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # False: the instructions lack the owner-contact block; reviewers see the flag, work may be delayed.
    has_owner_contact: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(20), default="PENDING", index=True)
    result: Mapped[str | None] = mapped_column(Text)
    deadline_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(40))  # the reviewer's key id
    claimed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(40))
    completed_at: Mapped[datetime | None]
    webhook_status: Mapped[str | None] = mapped_column(String(20))  # pending | delivered | failed
    webhook_attempts: Mapped[int] = mapped_column(default=0)


class HandoffMessage(Base):
    __tablename__ = "handoff_messages"
    __table_args__ = (Index("ix_handoff_messages_request_created", "request_id", "created_at"),)

    id: Mapped[str] = id_column("hmsg")
    request_id: Mapped[str] = mapped_column(ForeignKey("handoff_requests.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(20))  # requester | reviewer
    author_id: Mapped[str | None] = mapped_column(String(40))  # account id or reviewer key id
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HandoffEvent(Base):
    """One transition of a request (created, claimed, released, completed, message, webhook_*): who, when."""

    __tablename__ = "handoff_events"
    __table_args__ = (Index("ix_handoff_events_request_created", "request_id", "created_at"),)

    id: Mapped[str] = id_column("hevt")
    request_id: Mapped[str] = mapped_column(ForeignKey("handoff_requests.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str | None] = mapped_column(String(60))
    details: Mapped[dict | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
