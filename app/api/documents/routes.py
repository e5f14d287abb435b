"""Documents of a knowledge source: upload (file sources), list, inspect, delete."""
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.api.common import MessageSchema, UtcDateTime, deleted, envelope, list_args, list_envelope, ok
from app.api.knowledge_sources.schemas import SyncRunSchema
from app.auth import requires
from app.errors import Conflict
from app.services import documents, sync

blp = Blueprint("documents", __name__, url_prefix="/api/knowledge-sources", description="Documents")


class DocumentSchema(Schema):
    id = fields.String(required=True)
    source_id = fields.String(required=True)
    external_id = fields.String(required=True, metadata={"description": "Relative path or URL at the source"})
    name = fields.String(required=True)
    title = fields.String(allow_none=True)
    mime_type = fields.String(allow_none=True)
    size_bytes = fields.Integer(allow_none=True)
    content_hash = fields.String(allow_none=True, metadata={"description": "sha256 of the document's bytes"})
    status = fields.String(required=True, metadata={"enum": ["pending", "indexed", "indexed_with_warnings", "failed", "no_text"]})
    error = fields.Method("_error", metadata={"type": "object", "nullable": True})
    warnings = fields.Method("_warnings", metadata={
        "type": "array", "items": {"type": "object"},
        "description": "Why an indexed document may be incomplete, per page: {code, message, page}"})
    ocr = fields.Method("_ocr", metadata={"type": "object", "nullable": True,
                                          "description": "OCR'd pages, seconds, mean confidence"})
    page_count = fields.Integer(allow_none=True)
    chunk_count = fields.Integer(required=True)
    last_synced_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)

    def _error(self, obj):
        return {"code": obj.error_code, "message": obj.error_message} if obj.error_code else None

    def _warnings(self, obj):
        return list((obj.details or {}).get("warnings") or [])

    def _ocr(self, obj):
        return (obj.details or {}).get("ocr")


class UploadResultSchema(Schema):
    files = fields.List(fields.Dict(), required=True)
    sync = fields.Nested(SyncRunSchema, allow_none=True)
    message = fields.String()


class UploadFilesSchema(Schema):
    files = fields.Raw(metadata={"type": "string", "format": "binary", "description": "One or more files"})
    file = fields.Raw(metadata={"type": "string", "format": "binary", "description": "Same as files"})


DocumentListArgs = list_args("name", "updated_at", "size_bytes", extra={
    "status": fields.String(validate=validate.OneOf(("pending", "indexed", "indexed_with_warnings", "failed", "no_text")))},
    name="DocumentListArgs")


@blp.route("/<source_id>/documents")
class Documents(MethodView):
    @requires("viewer")
    @blp.arguments(DocumentListArgs, location="query")
    @blp.response(200, list_envelope(DocumentSchema))
    def get(self, args, source_id):
        """List a source's documents with status, error, chunk count, hash and pages"""
        return documents.list_documents(source_id, args)

    @requires("operator")
    @blp.arguments(UploadFilesSchema, location="files")
    @blp.response(202, envelope(UploadResultSchema))
    def post(self, _files, source_id):
        """Upload files (multipart field `files`, several allowed) to a file source and start a sync"""
        results = documents.save_uploads(source_id, request.files.getlist("files") + request.files.getlist("file"))
        run, message = None, None
        if any(r["accepted"] for r in results):
            try:
                run = sync.start_sync(source_id, trigger="upload")
            except Conflict:
                run = sync.request_resync(source_id)
                if run is None:
                    message = "A sync is running; another starts when it ends and picks these files up."
        return ok({"files": results, "sync": run, "message": message or ""})


@blp.route("/<source_id>/documents/<document_id>")
class DocumentById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(DocumentSchema))
    def get(self, source_id, document_id):
        """Get one document"""
        return ok(documents.get_document(source_id, document_id))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, source_id, document_id):
        """Delete a document with its chunks and vectors (an uploaded file is removed too)"""
        documents.delete_document(source_id, document_id)
        return deleted("document")
