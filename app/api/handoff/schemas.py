"""Schemas of the hand-off contract (/api/v1): answers are `{"data": ...}`, errors `{"error", "hint"}`."""
from __future__ import annotations

from functools import cache

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from app.api.common import StrictBoolean, StrictSchema, UtcDateTime
from app.models import HANDOFF_STATUSES

E164 = r"^\+[1-9]\d{6,14}$"


class HandoffRegisterSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=50),
                         metadata={"description": "Your agent's name, unique"})
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    email = fields.Email(required=True, validate=validate.Length(max=320))
    phone = fields.String(required=True, validate=validate.Regexp(E164, error="Not a phone number in E.164 "
                                                                              "form, e.g. +14155550123."))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=6, max=200))
    telegram_user_id = fields.String(allow_none=True, validate=validate.Regexp(r"^\d{1,20}$"),
                                     metadata={"description": "A Telegram user id to log in with later"})
    invitation = fields.String(allow_none=True, validate=validate.Length(min=1, max=200),
                               metadata={"description": "The invitation token an administrator created; "
                                                        "needed unless registration is open"})


class HandoffLoginSchema(StrictSchema):
    email = fields.Email(validate=validate.Length(max=320))
    telegram_user_id = fields.String(validate=validate.Regexp(r"^\d{1,20}$"))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=200))

    @validates_schema
    def _one_identity(self, data, **kwargs):
        if bool(data.get("email")) == bool(data.get("telegram_user_id")):
            raise ValidationError("Send either email or telegram_user_id, with the password.", "email")


class HandoffAccountSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    email = fields.String(required=True)
    phone = fields.String(required=True)
    telegram_user_id = fields.String(allow_none=True)
    created_at = UtcDateTime(required=True)


class HandoffRegisteredSchema(Schema):
    account = fields.Nested(HandoffAccountSchema, required=True)
    api_key = fields.String(required=True, metadata={"description": "Shown this once only"})
    webhook_secret = fields.String(required=True, metadata={"description": "Signs webhook calls; shown once"})


class HandoffLoggedInSchema(Schema):
    account = fields.Nested(HandoffAccountSchema, required=True)
    api_key = fields.String(required=True, metadata={"description": "A NEW key, issued by this login"})
    new_key = fields.Boolean(required=True)
    revoked_keys = fields.Integer(required=True, metadata={"description": "Oldest keys revoked by the cap"})
    note = fields.String(required=True)


class HandoffRequestCreateSchema(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    instructions = fields.String(required=True, validate=validate.Length(min=1, max=20_000),
                                 metadata={"description": "What to do; include an 'Owner contact:' block"})
    objective = fields.String(required=True, validate=validate.Length(min=1, max=5_000))
    max_minutes = fields.Integer(load_default=60, strict=True, validate=validate.Range(min=1, max=10_080))
    relaxed = StrictBoolean(load_default=True)
    webhook_url = fields.URL(allow_none=True, schemes={"http", "https"}, require_tld=False,
                             validate=validate.Length(max=2000))


class HandoffRequestSchema(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    instructions = fields.String(required=True)
    objective = fields.String(required=True)
    max_minutes = fields.Integer(required=True)
    relaxed = fields.Boolean(required=True)
    webhook_url = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"enum": list(HANDOFF_STATUSES)})
    result = fields.String(allow_none=True)
    deadline_at = UtcDateTime(required=True)
    overdue = fields.Boolean(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)
    completed_at = UtcDateTime(allow_none=True)
    warning = fields.String(metadata={"description": "Set when the owner-contact block is missing"})


_STATUS = "(" + "|".join(HANDOFF_STATUSES) + ")"


class HandoffRequestListArgs(Schema):
    status = fields.String(validate=validate.Regexp(rf"^{_STATUS}(,{_STATUS})*$",
                                                    error="Use a comma list of " + ", ".join(HANDOFF_STATUSES) + "."),
                           metadata={"description": "Comma-separated: PENDING,IN_PROGRESS,COMPLETED"})
    since = fields.AwareDateTime(default_timezone=None, metadata={"description": "Created or updated after this "
                                                                                "(ISO 8601 with a zone)"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10))

    @post_load
    def _statuses(self, data, **kwargs):
        if "status" in data:
            data["status"] = list(dict.fromkeys(data["status"].split(",")))
        return data


class HandoffRequestListSchema(Schema):
    requests = fields.List(fields.Nested(HandoffRequestSchema), required=True)
    count = fields.Integer(required=True, metadata={"description": "How many match, over every page"})
    page = fields.Integer(required=True)
    limit = fields.Integer(required=True)


class HandoffMessageCreateSchema(StrictSchema):
    request_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    content = fields.String(required=True, validate=validate.Length(min=1, max=10_000))


class HandoffConversationArgs(Schema):
    request_id = fields.String(required=True, validate=validate.Length(min=1, max=40))


class HandoffMessageSchema(Schema):
    id = fields.String(required=True)
    request_id = fields.String(required=True)
    author = fields.String(required=True, metadata={"enum": ["requester", "reviewer"]})
    content = fields.String(required=True)
    created_at = UtcDateTime(required=True)


class HandoffConversationSchema(Schema):
    request_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(HANDOFF_STATUSES)})
    messages = fields.List(fields.Nested(HandoffMessageSchema), required=True)


class HandoffErrorSchema(Schema):
    """This contract's errors: `{"error": "...", "hint": "..."}`, no envelope."""

    error = fields.String(required=True)
    hint = fields.String(required=True)


@cache
def data_of(schema: type[Schema]) -> type[Schema]:
    """`{"data": <schema>}`, one named class per schema."""
    name = "Handoff" + schema.__name__.removesuffix("Schema") + "Data"
    return Schema.from_dict({"data": fields.Nested(schema, required=True)}, name=name)
