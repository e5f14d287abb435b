from marshmallow import Schema, fields, validate

from app.api.common import StrictSchema, UtcDateTime
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
                               metadata={"description": "From an earlier reply: continue that conversation"})
    user_id = fields.String(allow_none=True, validate=validate.Length(max=200),
                            metadata={"description": "Your user, stored on a new conversation"})
    stream = fields.Boolean(load_default=False)
    verbosity = verbosity_field()
    attachments = attachments_field()


class AppUsageSchema(Schema):
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)


class AppReplySchema(Schema):
    id = fields.String(required=True, metadata={"description": "The answer's message id (msg_…)"})
    session_id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    content = fields.String(required=True)
    citations = fields.List(fields.Nested(CitationSchema), required=True)
    tool_calls = fields.List(fields.Nested(ToolCallSchema), required=True)
    attachments = fields.List(fields.Nested(AttachmentSchema), required=True)
    usage = fields.Nested(AppUsageSchema, required=True)
    created_at = UtcDateTime(required=True)
