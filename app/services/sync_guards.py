"""What keeps a sync from deleting documents because the node running it cannot see the source.

A listing that fails already fails the run before anything is deleted (connectors raise
``source_unreachable``). These cover the rest: a folder or repository that lists nothing at all while its
source had documents (an unmounted volume lists as an empty folder), and a file source's documents,
which go only with their upload (documents.delete_document), never because a listing lacked them.
"""
from __future__ import annotations

import logging

from sqlalchemy import update

from app.extensions import db
from app.models import Document, KnowledgeSource, SyncRun

log = logging.getLogger(__name__)


def listed_nothing(source: KnowledgeSource, known: int) -> str:
    """The reason a run fails when the source lists nothing but had ``known`` documents."""
    configuration = source.configuration or {}
    where = configuration.get("path") or configuration.get("url_or_path") or "The source"
    return (f"{where} lists no files, but {known} documents were synced from it before; nothing was deleted "
            "(is it mounted and readable on the node that ran this sync?). If it was emptied on purpose, "
            "delete its documents or the source.")


UPLOAD_MISSING = ("This document's upload is not in the shared upload store (it may be in the data dir of a "
                  "node that has not started since the upgrade); the document is kept. Upload the file again, "
                  "or delete the document.")


def keep_unlisted_uploads(run: SyncRun, missing: list, max_errors: int) -> None:
    """A file source's documents that the upload store did not list are kept (their bytes may sit in the
    data dir of a node that has not imported them yet), counted as failed and shown with the reason.
    ``missing`` holds the sync's rows of known documents (``id``, ``external_id`` attributes)."""
    if not missing:
        return
    errors = list(run.errors or [])
    for row in missing[:max(0, max_errors - len(errors))]:
        errors.append({"external_id": row.external_id, "document_id": row.id, "code": "upload_missing",
                       "message": UPLOAD_MISSING, "skipped": False})
    run.errors = errors
    run.failed += len(missing)
    ids = [row.id for row in missing]
    for start in range(0, len(ids), 500):
        db.session.execute(update(Document).where(Document.id.in_(ids[start:start + 500]))
                           .values(error_code="upload_missing", error_message=UPLOAD_MISSING))
    db.session.commit()


def import_local_uploads(source_id: str, run_id: str) -> None:
    """Uploads an older Magnet left in this node's data dir go to the shared store before the listing."""
    from app.services.legacy_uploads import import_local_uploads

    try:
        import_local_uploads(source_id, resync=False)
    except Exception:  # the files stay where they are; the next sync or start tries again
        db.session.rollback()
        log.exception("sync %s: importing this node's old uploads failed", run_id)
