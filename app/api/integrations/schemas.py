from marshmallow import Schema, fields, validate

from app.api.common import PartialSchema, StrictBoolean, StrictSchema, UtcDateTime, list_args


class IntegrationSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    agent_id = fields.String(required=True, metadata={"description": "The agent the application talks to"})
    key_prefix = fields.String(required=True, metadata={"description": "First characters of the key"})
    is_active = fields.Boolean(required=True)
    daily_credit_limit = fields.Float(
        allow_none=True, metadata={"description": "Most cost per UTC day; null: no limit"}
    )
    spent_today = fields.Float(required=True, metadata={"description": "Cost since today's UTC midnight"})
    last_used_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class IntegrationWithKeySchema(IntegrationSchema):
    key = fields.String(required=True, metadata={"description": "The key itself: shown this once only"})


class IntegrationWriteSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    agent_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    is_active = StrictBoolean(load_default=True)
    daily_credit_limit = fields.Float(
        allow_none=True, load_default=None, validate=validate.Range(min=0),
        metadata={"description": "Most cost per UTC day (the usage ledger's currency); null: no limit"},
    )


class IntegrationUpdateSchema(PartialSchema, IntegrationWriteSchema):
    """Every field optional: only the fields sent change."""


IntegrationListArgs = list_args(
    "name",
    "updated_at",
    "last_used_at",
    extra={"agent_id": fields.String(), "is_active": fields.Boolean()},
    name="IntegrationListArgs",
)
