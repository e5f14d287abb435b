from marshmallow import Schema, fields, validate

from app.api.common import StrictBoolean, StrictSchema, UtcDateTime
from app.api.conversations.schemas import (
    AttachmentSchema,
    CitationSchema,
    ToolCallSchema,
    attachments_field,
    message_field,
    verbosity_field,
)


class AppMessageSchema(StrictSchema):
    content = message_field()
    session_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=200),
                               metadata={"description": "Your identifier for the conversation, scoped to this "
                                                        "integration: the same id continues it, a new one starts "
                                                        "one; omitted, Magnet makes one (sess_…) and replies with it"})
    user_id = fields.String(allow_none=True, validate=validate.Length(max=200),
                            metadata={"description": "Your user, stored on a new conversation"})
    stream = StrictBoolean(load_default=False)
    verbosity = verbosity_field()
    attachments = attachments_field()


class AppUsageSchema(Schema):
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)


class AppReplySchema(Schema):
    id = fields.String(required=True, metadata={"description": "The answer's message id (msg_…)"})
    message_id = fields.String(required=True, metadata={"description": "The same as `id`, as stream events name it"})
    session_id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    content = fields.String(required=True)
    citations = fields.List(fields.Nested(CitationSchema), required=True)
    tool_calls = fields.List(fields.Nested(ToolCallSchema), required=True)
    attachments = fields.List(fields.Nested(AttachmentSchema), required=True)
    usage = fields.Nested(AppUsageSchema, required=True)
    created_at = UtcDateTime(required=True)


class AppErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "invalid_request, invalid_api_key, "
                                                  "integration_inactive, usage_limit_exceeded, agent_error, timeout"})
    message = fields.String(required=True)


class AppErrorSchema(Schema):
    """This contract's errors: `{"error": {"code", "message"}}`, no envelope."""

    error = fields.Nested(AppErrorBodySchema, required=True)
