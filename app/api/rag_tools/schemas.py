"""Schemas shared by RAG tools and retrieval tools."""
from marshmallow import Schema, fields, validate

from app.api.common import PartialSchema, StrictBoolean, StrictSchema, UtcDateTime, list_args
from app.models import ANSWER_MODES
from knowledge.retrieval_settings import FUSIONS, MODES


class RetrievalSettingsFields(StrictSchema):
    """Index settings (which index of each source) and retrieval settings (how it is searched)."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    knowledge_source_id = fields.String(metadata={"description": "One source; or use knowledge_source_ids"})
    knowledge_source_ids = fields.List(fields.String(), validate=validate.Length(min=1, max=50))
    embedding_model = fields.String(metadata={"description": "Embedding model id or name (default: the default)"})
    chunker = fields.String(validate=validate.OneOf(("token", "markdown")))
    chunk_size = fields.Integer(metadata={"description": "Tokens; at most the embedding model's input limit"})
    chunk_overlap = fields.Integer()
    top_k = fields.Integer(validate=validate.Range(min=1, max=100))
    mode = fields.String(validate=validate.OneOf(MODES))
    fusion = fields.String(allow_none=True, validate=validate.OneOf(FUSIONS))
    rrf_k = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1000))
    dense_weight = fields.Float(allow_none=True, validate=validate.Range(min=0, max=1))
    candidate_k = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1000))
    score_threshold = fields.Float(allow_none=True, validate=validate.Range(min=-1, max=1))
    expand_neighbors = fields.Integer(validate=validate.Range(min=0, max=5))
    rerank_model_id = fields.String(allow_none=True)


class RagToolWriteSchema(RetrievalSettingsFields):
    prompt_template_id = fields.String(allow_none=True, metadata={"description": "A rag template with {{context}} and {{query}}"})
    model_id = fields.String(allow_none=True, metadata={"description": "Chat model (default: the default chat model)"})
    answer_mode = fields.String(validate=validate.OneOf(ANSWER_MODES))


class RagToolUpdateSchema(PartialSchema, RagToolWriteSchema):
    pass


class RetrievalToolWriteSchema(RetrievalSettingsFields):
    pass


class RetrievalToolUpdateSchema(PartialSchema, RetrievalToolWriteSchema):
    pass


class ToolSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    knowledge_source_id = fields.Function(lambda t: (t.knowledge_source_ids or [None])[0], metadata={"type": "string"})
    knowledge_source_ids = fields.List(fields.String())
    embedding_model = fields.String(attribute="embedding_model_id")
    chunker = fields.String()
    chunk_size = fields.Integer()
    chunk_overlap = fields.Integer()
    top_k = fields.Function(lambda t: (t.retrieval or {}).get("top_k"), metadata={"type": "integer"})
    retrieval = fields.Dict(metadata={"description": "mode, fusion, rrf_k, dense_weight, candidate_k, score_threshold, expand_neighbors, rerank_model_id"})
    status = fields.Method("_status", metadata={"type": "object", "description": "index readiness and build progress"})
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)

    def _status(self, tool):
        from app.services.tools import readiness

        return readiness(tool)


class RagToolSchema(ToolSchema):
    prompt_template_id = fields.String(allow_none=True)
    model_id = fields.String(allow_none=True)
    answer_mode = fields.String()


class QuerySchema(StrictSchema):
    query = fields.String(required=True, validate=validate.Length(min=1, max=8000))
    top_k = fields.Integer(validate=validate.Range(min=1, max=100))
    filters = fields.Dict(allow_none=True, metadata={"description": "Mongo-style: $eq $ne $gt $gte $lt $lte $in $nin $and $or"})
    stream = StrictBoolean(load_default=False)


class ResultSchema(Schema):
    content = fields.String(required=True)
    score = fields.Float(required=True)
    metadata = fields.Dict(required=True)
    scores = fields.Dict()
    ranks = fields.Dict()


class QueryResponseSchema(Schema):
    query = fields.String(required=True)
    results = fields.List(fields.Nested(ResultSchema), required=True)
    answer = fields.String(allow_none=True, required=True)
    citations = fields.List(fields.Dict())
    no_answer_reason = fields.String(allow_none=True)
    scores = fields.List(fields.Dict())
    usage = fields.Dict()
    latency_ms = fields.Dict()
    trace_id = fields.String(allow_none=True)


ToolListArgs = list_args("name", "updated_at", name="ToolListArgs")
