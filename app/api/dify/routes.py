"""Dify's External Knowledge API, so Dify apps can use a Magnet retrieval tool as their knowledge base.

Dify sends `Authorization: Bearer <key>` (a Magnet key with the operator role) and `knowledge_id` (a
retrieval tool id). Errors keep Magnet's envelope and status codes, which Dify shows as a failed call.
`metadata_condition` is app.services.dify's.
"""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from app.api.common import StrictSchema
from app.auth import current_api_key_id, requires
from app.services import dify

blp = Blueprint("dify", __name__, url_prefix="/api/dify", description="Dify External Knowledge API")


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
    metadata_condition = fields.Dict(allow_none=True, metadata={
        "description": "Dify's filter: {logical_operator: and|or, conditions: [{name: str | [str], "
                       "comparison_operator, value}]}; every operator Dify documents, on the metadata records "
                       "show (source, path, name, title, page, section, custom keys)"})


class RecordSchema(Schema):
    content = fields.String(required=True)
    score = fields.Float(required=True)
    title = fields.String()
    metadata = fields.Dict()


class DifyResponseSchema(Schema):
    records = fields.List(fields.Nested(RecordSchema), required=True)


@blp.route("/retrieval")
class DifyRetrieval(MethodView):
    @requires("operator")
    @blp.arguments(DifyRequestSchema)
    @blp.response(200, DifyResponseSchema)
    def post(self, body):
        """Dify External Knowledge retrieval: records with content, score, title and metadata"""
        setting = body["retrieval_setting"]
        records = dify.retrieve(body["knowledge_id"], body["query"], top_k=setting["top_k"],
                                score_threshold=setting.get("score_threshold"),
                                metadata_condition=body.get("metadata_condition"), api_key_id=current_api_key_id())
        return {"records": records}
