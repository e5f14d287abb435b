"""Platform API keys: only a SHA-256 hash of the key is stored; the key is shown once at creation."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column

# Roles an admin gives platform keys. `reviewer` may call only the human-review routes (app.auth).
ROLES = ("viewer", "operator", "admin", "reviewer")
# The role of a hand-off account's keys (app.models.handoff): no platform route accepts it.
HANDOFF_ROLE = "handoff"


class ApiKey(TimestampMixin, Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = id_column("key")
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # The first characters of the key, kept so users can tell their keys apart in a list.
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
