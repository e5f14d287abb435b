"""The uploads of `file` sources, kept where every node reaches them: names in `source_uploads`, bytes in
the blob store (app.services.blobs). Any web node can take an upload and any worker can sync it.

A blob no upload names any more is garbage-collected after the change that released it has committed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.errors import NotFound
from app.extensions import db
from app.models import Blob, KnowledgeSource, SourceUpload, utcnow
from app.services.blobs import blob_store
from knowledge.connectors import StoredUpload
from knowledge.types import IngestError

log = logging.getLogger(__name__)
_ATTEMPTS = 3


def store_upload(source_id: str, name: str, data: bytes, uploaded_at: datetime | None = None) -> str:
    """Save ``data`` as the upload ``name`` of a source (replacing an earlier upload of that name) and
    commit; returns the blob's sha256. The replaced blob is collected if nothing else names it."""
    store = blob_store()
    for attempt in range(_ATTEMPTS):
        try:
            digest = store.put(data)
            row = db.session.get(SourceUpload, (source_id, name))
            previous = row.blob_sha256 if row is not None else None
            if row is None:
                row = SourceUpload(source_id=source_id, name=name)
                db.session.add(row)
            row.blob_sha256, row.size_bytes, row.uploaded_at = digest, len(data), uploaded_at or utcnow()
            db.session.commit()
            break
        except IntegrityError:
            # Two uploads of one name at once, or the blob removed between put and commit: try again.
            db.session.rollback()
            if db.session.get(KnowledgeSource, source_id) is None:
                raise NotFound(f"Knowledge source {source_id} does not exist.") from None
            if attempt == _ATTEMPTS - 1:
                raise
    if previous is not None and previous != digest:
        collect_garbage([previous])
    return digest


def forget_upload(source_id: str, name: str) -> str | None:
    """Remove an upload's row in the caller's transaction; returns its blob's hash, for collect_garbage
    once the caller has committed."""
    row = db.session.get(SourceUpload, (source_id, name))
    if row is None:
        return None
    db.session.delete(row)
    return row.blob_sha256


def blobs_of(source_id: str) -> list[str]:
    """The blob hashes a source's uploads name (to collect after the source is deleted)."""
    return list(db.session.execute(
        select(SourceUpload.blob_sha256).where(SourceUpload.source_id == source_id)).scalars())


def upload_names(source_id: str) -> list[str]:
    return list(db.session.execute(
        select(SourceUpload.name).where(SourceUpload.source_id == source_id).order_by(SourceUpload.name)).scalars())


def collect_garbage(candidates: Iterable[str | None]) -> int:
    """Delete those of ``candidates`` that no upload names. Call after committing the change that released
    them (SQLite has one writer: the store's own connection would wait for an open session transaction)."""
    candidates = {c for c in candidates if c}
    if not candidates:
        return 0
    named = set(db.session.execute(
        select(SourceUpload.blob_sha256).where(SourceUpload.blob_sha256.in_(candidates))).scalars())
    db.session.commit()  # end the read before the store writes
    return blob_store().delete(candidates - named)


def collect_all_garbage() -> int:
    """Delete every blob no upload names (left by a process that died between a commit and its collection)."""
    orphans = set(db.session.execute(
        select(Blob.sha256).where(~exists().where(SourceUpload.blob_sha256 == Blob.sha256))).scalars())
    db.session.commit()
    return blob_store().delete(orphans) if orphans else 0


def upload_listing(source_id: str) -> Callable[[], list[StoredUpload]]:
    """The listing the uploads connector runs: every upload of the source, each reading its blob lazily.

    It reads on a connection of its own, so the sync's session transaction is untouched; a store that
    cannot be read raises source_unreachable (the sync fails and deletes nothing), never an empty list.
    """
    engine, store = db.engine, blob_store()

    def listing() -> list[StoredUpload]:
        query = select(SourceUpload.name, SourceUpload.size_bytes, SourceUpload.blob_sha256,
                       SourceUpload.uploaded_at).where(SourceUpload.source_id == source_id)
        try:
            with engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise IngestError("source_unreachable",
                              f"The upload store could not be listed: {type(exc).__name__}: {exc}"[:500]) from exc
        return [StoredUpload(name=r.name, size=r.size_bytes, sha256=r.blob_sha256,
                             read=partial(read, r.name, r.blob_sha256), uploaded_at=r.uploaded_at) for r in rows]

    def read(name: str, listed: str) -> bytes:
        try:
            return store.read(listed)
        except IngestError:
            # Replaced since the listing (and the old blob collected): read what the name holds now.
            with engine.connect() as conn:
                current = conn.execute(select(SourceUpload.blob_sha256).where(
                    SourceUpload.source_id == source_id, SourceUpload.name == name)).scalar_one_or_none()
            if current is None or current == listed:
                raise
            return store.read(current)

    return listing
