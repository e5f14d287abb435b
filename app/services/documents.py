"""Documents of a knowledge source: uploads, listing, and deletion from every store."""
from __future__ import annotations

import io
import os
import re
import unicodedata

from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from app.common.pagination import paginate
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.models import Document, IndexedDocument
from app.services import indexes as index_service
from app.services.knowledge_sources import get_source
from app.services.sources_config import allowed_file_types, max_file_size
from app.services.uploads import collect_garbage, forget_upload, store_upload

MAX_FILES_PER_UPLOAD = 100
MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name (uploads were files once; names stay portable)
_UNSAFE = re.compile(r"[^\w .()+,=@~-]+")


def safe_filename(original: str) -> str:
    """The name an upload is stored under: its base name with letters of any script kept (werkzeug's
    secure_filename turns "报告.pdf" into "pdf", losing the name and the extension), anything that could
    change the path or hide the file removed, at most MAX_NAME_BYTES of UTF-8. Empty if nothing is left."""
    name = unicodedata.normalize("NFC", original).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", "".join(c for c in name if unicodedata.category(c)[0] != "C"))
    name = name.strip().lstrip(".").strip()  # a leading dot would hide it from the sync
    stem, extension = os.path.splitext(name)
    while len((stem + extension).encode("utf-8")) > MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    name = (stem.rstrip() + extension) if stem.strip() else ""
    return "" if name in ("", ".", "..") else name


def save_uploads(source_id: str, files: list[FileStorage]) -> list[dict]:
    """Store uploaded files for the next sync of a `file` source; returns one result per file.

    Each accepted file is committed to the shared upload store (app.services.uploads) on its own, whole
    or not at all, so any node's sync reads it. A file with the same name as an earlier upload replaces
    it (the sync then reports it as updated).
    """
    source = get_source(source_id)
    if source.type != "file":
        raise Conflict(f"{source.name} is a {source.type} source; uploads go to file sources.", code="wrong_source_type")
    if not files:
        raise ValidationFailed("Send one or more files in a multipart field named 'files'.",
                               details={"fields": {"files": ["no files"]}})
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise ValidationFailed(f"At most {MAX_FILES_PER_UPLOAD} files per upload.")
    allowed, limit = allowed_file_types(source), max_file_size(source)
    results = []
    for upload in files:
        results.append(_save_one(source.id, upload, allowed, limit))
    return results


def _save_one(source_id: str, upload: FileStorage, allowed: tuple[str, ...], limit: int) -> dict:
    original = upload.filename or ""
    name = safe_filename(original)
    result = {"filename": original, "accepted": False}
    extension = os.path.splitext(name)[1].lower()
    if not name:
        return {**result, "error": {"code": "invalid_name", "message": "The file has no usable name."}}
    if extension not in allowed:
        return {**result, "error": {"code": "unsupported_type",
                                    "message": f"{extension or 'files without an extension'} not accepted here; "
                                               f"allowed: {', '.join(allowed)}"}}
    buffer, size = io.BytesIO(), 0
    while chunk := upload.stream.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            return {**result, "error": {"code": "too_large",
                                        "message": f"Larger than this source's limit of {limit} bytes."}}
        buffer.write(chunk)
    if size == 0:
        return {**result, "error": {"code": "empty", "message": "The file is empty."}}
    store_upload(source_id, name, buffer.getvalue())
    return {**result, "accepted": True, "external_id": f"{name}/{name}", "size_bytes": size}


def list_documents(source_id: str, args: dict) -> dict:
    get_source(source_id)
    query = select(Document).where(Document.source_id == source_id)
    if args.get("status"):
        query = query.where(Document.status == args["status"])
    return paginate(query, Document, args)


def get_document(source_id: str, document_id: str) -> Document:
    document = db.session.get(Document, document_id)
    if document is None or document.source_id != source_id:
        raise NotFound(f"Document {document_id} does not exist in source {source_id}.")
    return document


def delete_document(source_id: str, document_id: str) -> None:
    """Remove a document, its chunks and vectors from every index; an uploaded file is deleted too (in the
    same transaction, so a later sync can never bring it back)."""
    from app.services.sync import active_run

    document = get_document(source_id, document_id)
    if active_run(source_id):
        raise Conflict("The source is syncing; delete the document when the sync has ended.", code="sync_in_progress")
    source = get_source(source_id)
    targets = [index_service.target(index) for index in index_service.indexes_of(source)]
    external_id = document.external_id
    db.session.execute(IndexedDocument.__table__.delete().where(IndexedDocument.document_id == document_id))
    db.session.delete(document)
    released = forget_upload(source_id, external_id.split("/", 1)[-1]) if source.type == "file" else None
    db.session.commit()
    for target in targets:
        target.vectors.delete_documents([document_id])
        target.lexical.delete_documents([document_id])
    collect_garbage([released])
