"""Configured models: chat, embedding and rerank models of any provider, with their pricing."""
from __future__ import annotations

from sqlalchemy import Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column

PROVIDERS = ("openai", "openai_compatible", "anthropic", "local")
MODEL_KINDS = ("chat", "embedding", "rerank")


class LlmModel(TimestampMixin, Base):
    __tablename__ = "llm_models"

    id: Mapped[str] = id_column("model")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(40))
    model_id: Mapped[str] = mapped_column(String(300))
    endpoint: Mapped[str | None] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    context_window: Mapped[int | None]
    input_per_1k: Mapped[float] = mapped_column(Float, default=0.0)
    output_per_1k: Mapped[float] = mapped_column(Float, default=0.0)
    cached_input_per_1k: Mapped[float | None] = mapped_column(Float)
    is_default: Mapped[bool] = mapped_column(default=False)
    # Built-in models ship with Magnet (local MiniLM, local extractive answerer); they cannot be deleted.
    is_builtin: Mapped[bool] = mapped_column(default=False)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_key_masked: Mapped[str | None] = mapped_column(String(40))
    settings: Mapped[dict] = mapped_column(default=dict)
