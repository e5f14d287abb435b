from marshmallow import Schema, fields, validate

from app.api.common import (
    PartialSchema,
    StrictBoolean,
    StrictSchema,
    UtcDateTime,
    list_args,
    validate_json_object,
)
from app.services.users import ROLE_CHOICES

ROLE_FIELD_DOC = {"enum": list(ROLE_CHOICES),
                  "description": "A Magnet role, or a workspace alias: guest = viewer, employee = operator"}


class UserSchema(Schema):
    id = fields.String(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True)
    is_active = fields.Boolean(required=True)
    has_avatar = fields.Function(lambda user: user.avatar_id is not None, required=True)
    avatar_url = fields.Function(lambda user: f"/api/users/{user.id}/avatar" if user.avatar_id else None,
                                 allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)
    last_login_at = UtcDateTime(allow_none=True)
    deactivated_at = UtcDateTime(allow_none=True)


class UserUpdateSchema(PartialSchema, StrictSchema):
    role = fields.String(validate=validate.OneOf(ROLE_CHOICES), metadata=ROLE_FIELD_DOC)
    name = fields.String(validate=validate.Length(min=1, max=200))
    is_active = StrictBoolean()


UserListArgs = list_args("email", "name", "role", "last_login_at", extra={
    "role": fields.String(validate=validate.OneOf(ROLE_CHOICES), metadata=ROLE_FIELD_DOC),
    "is_active": fields.Boolean(),
}, name="UserListArgs")


class PreferencesSchema(Schema):
    preferences = fields.Dict(required=True, validate=validate_json_object)


class PreferencesWriteSchema(StrictSchema):
    preferences = fields.Dict(required=True, validate=validate_json_object,
                              metadata={"description": "Any JSON object (size-limited); replaces the old one"})


class ImageUploadSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "PNG, JPEG, GIF, WebP or BMP; re-encoded, metadata dropped"})


IMAGE_RESPONSE = {"type": "string", "format": "binary"}


def image_response(image):
    """The stored (re-encoded) image's bytes, never sniffed as anything else."""
    from flask import Response

    return Response(image.data, mimetype=image.content_type,
                    headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff",
                             "Content-Security-Policy": "default-src 'none'"})
