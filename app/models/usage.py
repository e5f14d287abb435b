"""The usage ledger: one row per metered call (LLM, embedding, tool), with tokens, cost and latency."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, id_column, utcnow


class UsageRecord(Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_entity", "entity_type", "entity_id", "created_at"),)

    id: Mapped[str] = id_column("usage")
    entity_type: Mapped[str] = mapped_column(String(40))  # rag_tool, agent, evaluation, sync ...
    entity_id: Mapped[str | None] = mapped_column(String(40))
    operation: Mapped[str] = mapped_column(String(40))  # chat, embedding, rerank, tool
    # No foreign keys: the ledger outlives the models, keys and tools it mentions.
    model_ref: Mapped[str | None] = mapped_column(String(40), index=True)
    model_name: Mapped[str | None] = mapped_column(String(300))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cached_tokens: Mapped[int] = mapped_column(default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    api_key_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # The signed-in user a call was made for (a browser session has no key id).
    user_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # Filled from the metering context (app.services.usage.metering): the conversation and app
    # integration a call was made for, so per-conversation analytics and daily credit limits are one query.
    conversation_id: Mapped[str | None] = mapped_column(String(40), index=True)
    integration_id: Mapped[str | None] = mapped_column(String(40), index=True)
    details: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
