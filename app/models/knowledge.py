"""Knowledge sources, their documents, their indexes and their sync runs."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column

SOURCE_TYPES = ("file", "directory", "web", "git")
SYNC_STATUSES = ("queued", "running", "completed", "completed_with_errors", "failed", "cancelled")
ACTIVE_SYNC_STATUSES = ("queued", "running")
DOCUMENT_STATUSES = ("pending", "indexed", "indexed_with_warnings", "failed", "no_text")
# A document in either state has its chunks in the indexes; with warnings, `details.warnings` says what
# may be missing or wrong in them (a low-confidence OCR page, a scanned page left unread with OCR off).
INDEXED_STATUSES = ("indexed", "indexed_with_warnings")


class KnowledgeSource(TimestampMixin, Base):
    __tablename__ = "knowledge_sources"

    id: Mapped[str] = id_column("ks")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(20))
    configuration: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="idle")  # idle, syncing, error
    # {"interval_minutes": 60} or {"cron": "0 3 * * *"}; None = on demand only
    schedule: Mapped[dict | None]
    next_sync_at: Mapped[datetime | None] = mapped_column(index=True)
    last_sync: Mapped[datetime | None]
    last_sync_id: Mapped[str | None] = mapped_column(String(40))
    last_sync_status: Mapped[str | None] = mapped_column(String(30))
    # Set when files arrive while a sync runs: the sync starts another one as it ends.
    resync_requested: Mapped[bool] = mapped_column(default=False)


class Document(TimestampMixin, Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id", name="uq_documents_source_external"),
        # A source's documents in the lists' default order: page 1 and every cursor page are a range scan
        # of this index instead of a sort of all the source's documents (0017_scale).
        Index("ix_documents_source_created", "source_id", "created_at", "id"),
    )

    id: Mapped[str] = id_column("doc")
    source_id: Mapped[str] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(2000))  # relative path or URL: stable across syncs
    name: Mapped[str] = mapped_column(String(500))
    mime_type: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))  # sha256 of the raw bytes
    status: Mapped[str] = mapped_column(String(30), default="pending")
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(1000))
    page_count: Mapped[int | None]
    chunk_count: Mapped[int] = mapped_column(default=0)
    # The extracted text, kept so a new index over this source re-chunks without re-parsing. Deferred:
    # a list page of 20 large PDFs would otherwise read every one's whole text for nothing.
    sections: Mapped[list] = mapped_column(default=list, deferred=True)
    details: Mapped[dict] = mapped_column(default=dict)
    last_synced_at: Mapped[datetime | None]


class KnowledgeIndex(TimestampMixin, Base):
    """An index is (source, embedding model, chunker, chunk size, overlap): one Chroma collection."""

    __tablename__ = "knowledge_indexes"
    __table_args__ = (
        UniqueConstraint(
            "source_id", "embedding_model_id", "chunker", "chunk_size", "chunk_overlap", name="uq_knowledge_indexes_settings"
        ),
    )

    id: Mapped[str] = id_column("idx")
    source_id: Mapped[str] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    embedding_model_id: Mapped[str] = mapped_column(ForeignKey("llm_models.id", ondelete="RESTRICT"), index=True)
    chunker: Mapped[str] = mapped_column(String(20), default="token")
    chunk_size: Mapped[int]
    chunk_overlap: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="building")  # building, ready, failed
    documents_done: Mapped[int] = mapped_column(default=0)
    documents_total: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)


class IndexedDocument(Base):
    """Which version of a document an index holds, and how many chunks it has there."""

    __tablename__ = "indexed_documents"

    index_id: Mapped[str] = mapped_column(ForeignKey("knowledge_indexes.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    chunk_count: Mapped[int] = mapped_column(default=0)


class SyncRun(TimestampMixin, Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        # At most one queued-or-running sync per source, enforced by the database itself.
        Index(
            "uq_sync_runs_one_active",
            "source_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[str] = id_column("sync")
    source_id: Mapped[str] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(30), default="queued")
    trigger: Mapped[str] = mapped_column(String(20), default="manual")  # manual, schedule, upload, cli
    documents_total: Mapped[int | None]
    documents_done: Mapped[int] = mapped_column(default=0)
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list] = mapped_column(default=list)  # [{"external_id", "document_id", "code", "message"}]
    message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]  # a worker that stops beating for long is presumed dead
    # Seconds spent per stage ({"parse": .., "ocr": .., "embed": .., "write": .., "ocr_pages": n}).
    timings: Mapped[dict | None]
