"""People who sign in (users), their browser sessions, invitations, one-time sign-in links, failed
sign-ins (the throttle's memory), stored images (avatars, the workspace logo) and the workspace itself.

Every secret token (session, invitation, magic link) is stored only as a SHA-256 hash: the tokens are
256 random bits, so a fast hash is enough, and a copy of the database signs nobody in.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column, utcnow


class StoredImage(Base):
    """An image re-encoded by Magnet (never the uploaded bytes): a user's avatar or the workspace logo."""

    __tablename__ = "stored_images"

    id: Mapped[str] = id_column("img")
    content_type: Mapped[str] = mapped_column(String(40))  # image/png or image/webp
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[str] = id_column("user")
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # None: the user signs in only by magic link (e.g. created by `magnet users create` without one).
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(default=True)
    deactivated_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    avatar_id: Mapped[str | None] = mapped_column(ForeignKey("stored_images.id", ondelete="SET NULL"))
    preferences: Mapped[dict] = mapped_column(default=dict)


class UserSession(Base):
    """A signed-in browser. The cookie holds the token; only its hash is here."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = id_column("sess")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The double-submit CSRF token tied to this session. Not a credential on its own (it signs nobody in),
    # kept readable so pages can render it into their forms.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)  # slides forward as the session is used
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class Invitation(Base):
    """An admin's invitation to sign up: single use, expiring."""

    __tablename__ = "invitations"

    id: Mapped[str] = id_column("inv")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))  # when set, only this address may use it
    role: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class LoginToken(Base):
    """A one-time sign-in link sent by email (magic link)."""

    __tablename__ = "login_tokens"

    id: Mapped[str] = id_column("ltok")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class LoginFailure(Base):
    """One failed sign-in, counted per account and per client address by the throttle. In the database so
    every process and node sees the same count."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_scope_subject", "scope", "subject", "created_at"),)

    id: Mapped[str] = id_column("lfail")
    scope: Mapped[str] = mapped_column(String(10))  # account | ip
    subject: Mapped[str] = mapped_column(String(320))  # the lower-cased email, or the address
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


WORKSPACE_ID = "workspace"


class Workspace(Base):
    """The one workspace of an installation (a single row with a fixed id)."""

    __tablename__ = "workspace"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=WORKSPACE_ID)
    name: Mapped[str] = mapped_column(String(200), default="Magnet")
    description: Mapped[str] = mapped_column(Text, default="")
    goals: Mapped[str] = mapped_column(Text, default="")
    mission: Mapped[str] = mapped_column(Text, default="")
    signups_open: Mapped[bool] = mapped_column(default=False)
    logo_id: Mapped[str | None] = mapped_column(ForeignKey("stored_images.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
