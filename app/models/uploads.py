"""Uploaded bytes, in the database every node reaches: content-addressed blobs, and each file source's
uploads naming them.

A blob is stored once however many uploads share its bytes; one that no upload names any more is removed
(app.services.uploads). The foreign key from an upload to its blob is what keeps that removal safe when
an upload of the same bytes arrives at the same moment: the database refuses to delete a named blob.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class Blob(Base):
    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex of the bytes' sha256
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # bytea on PostgreSQL, BLOB on SQLite; deferred so that loading a Blob never pulls its bytes by accident.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceUpload(Base):
    """One uploaded file of a `file` source: its stored name (the document's key) and the blob it holds."""

    __tablename__ = "source_uploads"

    source_id: Mapped[str] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), primary_key=True)  # documents.safe_filename: <= 200 bytes
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="RESTRICT"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
