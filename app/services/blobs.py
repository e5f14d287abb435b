"""Where uploaded bytes live: a content-addressed store every node reaches.

`BlobStore` is the interface; `DatabaseBlobStore` (the `blobs` table) is the one implementation, so an
install needs nothing beyond its database. An S3-compatible store would implement the same four methods;
note that it could not rely on the database's foreign key to keep a blob that a concurrent upload has just
named, so it would have to delete only blobs unreferenced for a while.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.extensions import db
from app.models import Blob, utcnow
from knowledge.types import IngestError

log = logging.getLogger(__name__)


class BlobStore(Protocol):
    """Bytes keyed by the hex sha256 of their content."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent: the same bytes are stored once) and return its sha256."""
        ...

    def read(self, sha256: str) -> bytes:
        """The bytes of a blob; IngestError ``fetch_failed`` when they are missing or unreachable."""
        ...

    def delete(self, hashes: Collection[str]) -> int:
        """Remove blobs that nothing references any more; one still referenced is kept. Returns how many went."""
        ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DatabaseBlobStore:
    """Blobs in the application database (bytea on PostgreSQL, BLOB on SQLite).

    ``put`` joins the caller's session transaction, so a blob and the upload naming it commit together;
    ``read`` and ``delete`` use connections of their own and leave the session alone (and need no app
    context: the engine is taken when the store is made).
    """

    def __init__(self, engine=None) -> None:
        self.engine = engine if engine is not None else db.engine

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        # Insert-if-absent in one statement: a concurrent removal of the same blob either finishes first
        # (and the row is inserted again) or is refused by the foreign key of the upload naming it.
        insert = _insert_if_absent(self.engine.dialect.name)
        db.session.execute(insert.values(sha256=digest, size_bytes=len(data), data=data, created_at=utcnow()))
        return digest

    def read(self, sha256: str) -> bytes:
        try:
            with self.engine.connect() as conn:
                data = conn.execute(select(Blob.data).where(Blob.sha256 == sha256)).scalar_one_or_none()
        except SQLAlchemyError as exc:
            raise IngestError("fetch_failed", f"The upload store could not be read: {type(exc).__name__}") from exc
        if data is None:
            raise IngestError("fetch_failed", f"The uploaded bytes (sha256 {sha256[:12]}…) are missing from the store")
        return bytes(data)

    def delete(self, hashes: Collection[str]) -> int:
        removed = 0
        for digest in hashes:  # one at a time: a blob named again meanwhile fails alone, not the batch
            try:
                with self.engine.begin() as conn:
                    removed += conn.execute(delete(Blob).where(Blob.sha256 == digest)).rowcount
            except IntegrityError:
                log.info("blob %s is referenced again; kept", digest[:12])
        return removed


def _insert_if_absent(dialect: str):
    table = Blob.__table__
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=[table.c.sha256])


def blob_store() -> BlobStore:
    """The configured blob store (the database; the seam where another store would be chosen)."""
    return DatabaseBlobStore()
