"""Dify's External Knowledge API, so Dify apps can use a Magnet retrieval tool as their knowledge base.

Dify sends `Authorization: Bearer <key>` (a Magnet key with the operator role) and `knowledge_id` (a
retrieval tool id). Errors keep Magnet's envelope and status codes, which Dify shows as a failed call.
"""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from app.api.common import StrictSchema
from app.auth import current_api_key_id, requires
from app.errors import ValidationFailed
from app.services import rag, tools

blp = Blueprint("dify", __name__, url_prefix="/api/dify", description="Dify External Knowledge API")

# Dify's comparison operators that have an exact equivalent in Magnet's filters.
OPERATORS = {"is": "$eq", "=": "$eq", "is not": "$ne", "≠": "$ne", ">": "$gt", "<": "$lt", "≥": "$gte",
             "≤": "$lte", "after": "$gt", "before": "$lt"}


class RetrievalSettingSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # Dify may add settings; ignoring unknown ones keeps old Magnets compatible

    top_k = fields.Integer(load_default=5, validate=validate.Range(min=1, max=100))
    score_threshold = fields.Float(load_default=None, allow_none=True)


class DifyRequestSchema(StrictSchema):
    class Meta:
        unknown = EXCLUDE

    knowledge_id = fields.String(required=True)
    query = fields.String(required=True, validate=validate.Length(min=1))
    retrieval_setting = fields.Nested(RetrievalSettingSchema, load_default=lambda: {"top_k": 5, "score_threshold": None})
    metadata_condition = fields.Dict(allow_none=True)


class RecordSchema(Schema):
    content = fields.String(required=True)
    score = fields.Float(required=True)
    title = fields.String()
    metadata = fields.Dict()


class DifyResponseSchema(Schema):
    records = fields.List(fields.Nested(RecordSchema), required=True)


def metadata_filter(condition: dict | None) -> dict | None:
    """Dify's metadata_condition as a Magnet filter; an operator with no exact equivalent is a 422."""
    if not condition or not condition.get("conditions"):
        return None
    clauses = []
    for item in condition["conditions"]:
        operator = OPERATORS.get(item.get("comparison_operator"))
        if operator is None:
            raise ValidationFailed(f"Unsupported comparison_operator {item.get('comparison_operator')!r}; "
                                   f"supported: {', '.join(OPERATORS)}.", code="invalid_filter")
        names = item.get("name") or []
        clauses.extend({name: {operator: item.get("value")}} for name in names)
    if len(clauses) == 1:
        return clauses[0]
    return {"$or" if condition.get("logical_operator") == "or" else "$and": clauses}


@blp.route("/retrieval")
class DifyRetrieval(MethodView):
    @requires("operator")
    @blp.arguments(DifyRequestSchema)
    @blp.response(200, DifyResponseSchema)
    def post(self, body):
        """Dify External Knowledge retrieval: records with content, score, title and metadata"""
        setting = body["retrieval_setting"]
        run = rag.QueryRun(tool=tools.get_tool("retrieval", body["knowledge_id"]), query=body["query"],
                           api_key_id=current_api_key_id())
        rag.retrieve(run, top_k=setting["top_k"], filters=metadata_filter(body.get("metadata_condition")))
        rag.save_trace(run)
        threshold = setting.get("score_threshold")
        records = [
            {"content": r["content"], "score": r["score"], "title": r["metadata"].get("title") or "",
             "metadata": r["metadata"]}
            for r in run.results if threshold is None or r["score"] >= threshold
        ]
        return {"records": records}
