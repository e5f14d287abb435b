from marshmallow import Schema, fields, validate

from app.api.common import StrictSchema, UtcDateTime, list_args
from app.models import HANDOFF_ROLE, ROLES


class ApiKeySchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    # `handoff`: a hand-off account's key (issued at its registration or login, not here)
    role = fields.String(required=True, metadata={"enum": [*ROLES, HANDOFF_ROLE]})
    prefix = fields.String(required=True, metadata={"description": "First characters of the key"})
    created_at = UtcDateTime(required=True)
    last_used_at = UtcDateTime(allow_none=True)
    revoked_at = UtcDateTime(allow_none=True)


class CreatedApiKeySchema(ApiKeySchema):
    key = fields.String(required=True, metadata={"description": "The key itself: shown this once only"})


class ApiKeyCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


ApiKeyListArgs = list_args(
    "name",
    "role",
    "last_used_at",
    extra={"include_revoked": fields.Boolean(load_default=False)},
    name="ApiKeyListArgs",
)
