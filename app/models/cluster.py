"""What the processes of a cluster share about each other: which workers are alive, and which periodic
task periods have been claimed (so a tick runs once across all workers, not once per worker)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class WorkerHeartbeat(Base):
    """One row per running job consumer (`magnet worker`, or the one inside `magnet serve`)."""

    __tablename__ = "worker_heartbeats"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:random
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class PeriodicClaim(Base):
    """The last period (a UTC minute, 'YYYY-MM-DDTHH:MM') a periodic task ran for, and who ran it."""

    __tablename__ = "periodic_claims"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    period: Mapped[str] = mapped_column(String(40))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime]
