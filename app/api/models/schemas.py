from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from app.api.common import PartialSchema, StrictBoolean, StrictSchema, UtcDateTime, list_args
from app.models import MODEL_KINDS, PROVIDERS


def infer_kind(model_id: str) -> str:
    """The kind of a model created without one, from its provider id ("text-embedding-3-small")."""
    lowered = model_id.lower()
    if "embed" in lowered:
        return "embedding"
    return "rerank" if "rerank" in lowered else "chat"


HTTP_URL = validate.URL(schemes={"http", "https"}, require_tld=False, error="must be an http(s) URL")


class PricingSchema(StrictSchema):
    input_per_1k = fields.Float(load_default=0.0, validate=validate.Range(min=0), metadata={"description": "Cost per 1,000 prompt tokens"})
    output_per_1k = fields.Float(load_default=0.0, validate=validate.Range(min=0))
    cached_input_per_1k = fields.Float(allow_none=True, validate=validate.Range(min=0))


class ModelSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    provider = fields.String(required=True, metadata={"enum": list(PROVIDERS)})
    model_id = fields.String(required=True)
    endpoint = fields.String(allow_none=True)
    kind = fields.String(required=True, metadata={"enum": list(MODEL_KINDS)})
    context_window = fields.Integer(allow_none=True)
    pricing = fields.Method("_pricing", metadata={"type": "object"})
    is_default = fields.Boolean(required=True)
    is_builtin = fields.Boolean(required=True)
    has_api_key = fields.Method("_has_key", metadata={"type": "boolean"})
    api_key_masked = fields.String(allow_none=True, metadata={"description": "The key, masked; the key itself is never returned"})
    settings = fields.Dict()
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)

    def _pricing(self, obj):
        return {
            "input_per_1k": obj.input_per_1k,
            "output_per_1k": obj.output_per_1k,
            "cached_input_per_1k": obj.cached_input_per_1k,
        }

    def _has_key(self, obj):
        return obj.api_key_encrypted is not None


class ModelWriteSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))
    model_id = fields.String(required=True, validate=validate.Length(min=1, max=300))
    endpoint = fields.String(allow_none=True, validate=[validate.Length(max=2000), HTTP_URL])
    api_key = fields.String(allow_none=True, load_only=True, validate=validate.Length(min=1, max=4000),
                            metadata={"description": "Write-only; encrypted at rest. null removes it."})
    kind = fields.String(validate=validate.OneOf(MODEL_KINDS),
                         metadata={"description": "Default: inferred from model_id: 'embedding' when it contains "
                                                  "'embed', 'rerank' when it contains 'rerank', else 'chat'"})
    context_window = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=100_000_000))
    pricing = fields.Nested(PricingSchema)
    is_default = StrictBoolean(load_default=False)
    settings = fields.Dict(keys=fields.String(), load_default=dict)

    @post_load
    def _infer_kind(self, data, partial, **kwargs):
        if "kind" not in data and not partial:
            data["kind"] = infer_kind(data["model_id"])
        return data

    @validates_schema
    def _endpoint_needed(self, data, partial, **kwargs):
        if data.get("provider") == "openai_compatible" and not data.get("endpoint") and not partial:
            raise ValidationError("openai_compatible models need an endpoint (the server's base URL)", "endpoint")


class ModelUpdateSchema(PartialSchema, ModelWriteSchema):
    """Every field optional: only the fields sent change."""


ModelListArgs = list_args(
    "name",
    "updated_at",
    extra={
        "kind": fields.String(validate=validate.OneOf(MODEL_KINDS)),
        "provider": fields.String(validate=validate.OneOf(PROVIDERS)),
    },
    name="ModelListArgs",
)
