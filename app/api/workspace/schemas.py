from marshmallow import Schema, fields, validate

from app.api.common import PartialSchema, StrictBoolean, StrictSchema, UtcDateTime

TEXT = validate.Length(max=20000)


class WorkspaceSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(required=True)
    goals = fields.String(required=True)
    mission = fields.String(required=True)
    signups_open = fields.Boolean(required=True)
    has_logo = fields.Function(lambda row: row.logo_id is not None, required=True)
    logo_url = fields.Function(lambda row: "/api/workspace/logo" if row.logo_id else None, allow_none=True)
    updated_at = UtcDateTime(required=True)


class WorkspaceUpdateSchema(PartialSchema, StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=TEXT)
    goals = fields.String(validate=TEXT)
    mission = fields.String(validate=TEXT)
    signups_open = StrictBoolean(metadata={"description": "Anyone may sign up (as a viewer) without an invitation"})
