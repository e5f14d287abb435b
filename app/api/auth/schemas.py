from marshmallow import Schema, fields, validate

from app.api.common import StrictSchema, UtcDateTime
from app.api.users.schemas import ROLE_FIELD_DOC, UserSchema
from app.services.users import ROLE_CHOICES

# argon2 hashes any length, but a megabyte password would only cost the server time.
PASSWORD = validate.Length(min=1, max=1024)
NEW_PASSWORD = validate.Length(min=10, max=1024)  # app.services.passwords.MIN_PASSWORD_LENGTH


class SignupSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, validate=NEW_PASSWORD, load_only=True,
                             metadata={"description": "At least 10 characters"})
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    invitation = fields.String(validate=validate.Length(min=1, max=200), load_only=True,
                               metadata={"description": "An admin's invitation token (needed unless sign-ups "
                                                        "are open or this is the first user)"})


class LoginSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    password = fields.String(required=True, validate=PASSWORD, load_only=True)


class MagicLinkSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))


class PasswordChangeSchema(StrictSchema):
    current_password = fields.String(required=True, validate=PASSWORD, load_only=True)
    new_password = fields.String(required=True, validate=NEW_PASSWORD, load_only=True)


class SignedInSchema(Schema):
    user = fields.Nested(UserSchema, required=True)
    csrf_token = fields.String(required=True, metadata={
        "description": "Send it back as the X-CSRF-Token header on every write (also in the magnet_csrf cookie)"})


class MeSchema(Schema):
    kind = fields.String(required=True, metadata={"enum": ["user", "api_key"]})
    role = fields.String(required=True)
    display_name = fields.String(required=True)
    user = fields.Nested(UserSchema, allow_none=True)
    api_key_id = fields.String(allow_none=True)
    csrf_token = fields.String(allow_none=True)


class PasswordChangedSchema(Schema):
    sessions_ended = fields.Integer(required=True)


class InvitationCreateSchema(StrictSchema):
    role = fields.String(load_default="viewer", validate=validate.OneOf(ROLE_CHOICES), metadata=ROLE_FIELD_DOC)
    email = fields.Email(validate=validate.Length(max=320),
                         metadata={"description": "When given, only this address may use the invitation"})


class InvitationSchema(Schema):
    id = fields.String(required=True)
    role = fields.String(required=True)
    email = fields.String(allow_none=True)
    expires_at = UtcDateTime(required=True)
    token = fields.String(required=True, metadata={"description": "Shown this once only"})
    signup_url = fields.String(required=True)
