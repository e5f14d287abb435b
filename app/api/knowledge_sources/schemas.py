from marshmallow import Schema, fields, validate

from app.api.common import PartialSchema, StrictSchema, UtcDateTime, list_args
from app.models import SOURCE_TYPES


class IndexSettingsSchema(StrictSchema):
    embedding_model_id = fields.String(metadata={"description": "Default: the default embedding model"})
    chunker = fields.String(validate=validate.OneOf(("token", "markdown")))
    chunk_size = fields.Integer(validate=validate.Range(min=1, max=1_000_000),
                                metadata={"description": "Tokens per chunk, at most the model's input limit (256 for MiniLM)"})
    chunk_overlap = fields.Integer(validate=validate.Range(min=0, max=1_000_000),
                                   metadata={"description": "Tokens; smaller than chunk_size"})


class IndexSchema(Schema):
    id = fields.String(required=True)
    source_id = fields.String(required=True)
    embedding_model_id = fields.String(required=True)
    chunker = fields.String(required=True)
    chunk_size = fields.Integer(required=True)
    chunk_overlap = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"enum": ["building", "ready", "failed"]})
    progress = fields.Method("_progress", metadata={"type": "object"})
    error = fields.String(allow_none=True)
    created_at = UtcDateTime(required=True)

    def _progress(self, obj):
        from app.services.indexes import progress  # counted from what the index holds, not a build's counters

        return progress(obj)


class SyncRunSchema(Schema):
    id = fields.String(required=True)
    source_id = fields.String(required=True)
    status = fields.String(required=True, metadata={
        "enum": ["queued", "running", "completed", "completed_with_errors", "failed", "cancelled"]})
    trigger = fields.String(required=True)
    progress = fields.Method("_progress", metadata={"type": "object", "description": "documents done / total (total is null until a web crawl ends)"})
    counts = fields.Method("_counts", metadata={"type": "object"})
    errors = fields.List(fields.Dict(), metadata={"description": "One entry per failed or skipped document"})
    message = fields.String(allow_none=True)
    timings = fields.Dict(allow_none=True, metadata={
        "description": "Seconds per stage once the run ends: parse (OCR included), ocr, embed, write; ocr_pages"})
    cancel_requested = fields.Boolean()
    created_at = UtcDateTime(required=True)
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)

    def _progress(self, obj):
        return {"done": obj.documents_done, "total": obj.documents_total}

    def _counts(self, obj):
        return {k: getattr(obj, k) for k in ("added", "updated", "unchanged", "deleted", "failed")}


class SourceSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    type = fields.String(required=True, metadata={"enum": list(SOURCE_TYPES)})
    configuration = fields.Dict(required=True)
    status = fields.String(required=True, metadata={
        "enum": ["idle", "syncing", "error"],
        "description": "idle: not syncing, its documents searchable as last synced (the contract's active/"
                       "ready; see last_sync_status for how that sync ended, e.g. completed_with_errors); "
                       "syncing: a sync is queued or running; error: the last sync failed as a whole"})
    schedule = fields.Dict(allow_none=True)
    next_sync_at = UtcDateTime(allow_none=True)
    last_sync = UtcDateTime(allow_none=True)
    last_sync_id = fields.String(allow_none=True)
    last_sync_status = fields.String(allow_none=True)
    document_count = fields.Integer()
    chunk_count = fields.Integer()
    active_sync = fields.Nested(SyncRunSchema, allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class SourceCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    type = fields.String(required=True, validate=validate.OneOf(SOURCE_TYPES))
    configuration = fields.Dict(keys=fields.String(), load_default=dict, metadata={
        "description": "every type: ocr (\"auto\" | \"off\" | \"force\"), file_types, max_file_size; directory: path, include, exclude; "
                       "web: urls, sitemap, max_depth, max_pages; git: url, branch, include, exclude"})
    schedule = fields.Dict(allow_none=True, metadata={"description": '{"interval_minutes": 60} or {"cron": "0 3 * * *"}'})
    index = fields.Nested(IndexSettingsSchema, metadata={"description": "Settings of the source's default index"})


class SourceUpdateSchema(PartialSchema, StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    type = fields.String(validate=validate.OneOf(SOURCE_TYPES))
    configuration = fields.Dict(keys=fields.String())
    schedule = fields.Dict(allow_none=True)


SourceListArgs = list_args(
    "name", "updated_at", "last_sync",
    extra={"type": fields.String(validate=validate.OneOf(SOURCE_TYPES)),
           "status": fields.String(validate=validate.OneOf(("idle", "syncing", "error")))},
    name="SourceListArgs",
)
SyncListArgs = list_args("finished_at", name="SyncListArgs")


class SourceDeleteArgs(Schema):
    force = fields.Boolean(load_default=False, metadata={
        "description": "Also delete the RAG and retrieval tools that search this source (default: 409 in_use "
                       "naming them)"})
