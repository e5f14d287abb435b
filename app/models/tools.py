"""Retrieval tools and RAG tools: retrieval settings over one or more sources' indexes."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column, utcnow

ANSWER_MODES = ("generate", "extractive", "none")


class _ToolColumns(TimestampMixin):
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    knowledge_source_ids: Mapped[list] = mapped_column(default=list)
    # Index settings: with each source they name one index (see app.services.indexes).
    embedding_model_id: Mapped[str] = mapped_column(ForeignKey("llm_models.id", ondelete="RESTRICT"))
    chunker: Mapped[str] = mapped_column(String(20), default="token")
    chunk_size: Mapped[int]
    chunk_overlap: Mapped[int]
    # mode, fusion, rrf_k, dense_weight, candidate_k, top_k, score_threshold, expand_neighbors, rerank_model_id
    retrieval: Mapped[dict] = mapped_column(default=dict)


class RetrievalTool(_ToolColumns, Base):
    __tablename__ = "retrieval_tools"

    id: Mapped[str] = id_column("ret")


class RagTool(_ToolColumns, Base):
    __tablename__ = "rag_tools"

    id: Mapped[str] = id_column("rag")
    prompt_template_id: Mapped[str | None] = mapped_column(ForeignKey("prompt_templates.id", ondelete="RESTRICT"))
    model_id: Mapped[str | None] = mapped_column(ForeignKey("llm_models.id", ondelete="RESTRICT"))
    answer_mode: Mapped[str] = mapped_column(String(20), default="generate")


class Trace(Base):
    """What one query did, stage by stage, kept so an answer can be explained later."""

    __tablename__ = "traces"

    id: Mapped[str] = id_column("trace")
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(40), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40))
    query: Mapped[str] = mapped_column(Text)
    spans: Mapped[list] = mapped_column(default=list)  # [{"stage", "ms", "input", "output"}]
    total_ms: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
