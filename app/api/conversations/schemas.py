from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from app.api.common import StrictBoolean, StrictSchema, UtcDateTime, list_args
from app.services.attachments import DEFAULT_MAX_ATTACHMENTS
from app.services.turns import VERBOSITY_EVENTS

MAX_MESSAGE_CHARS = 32_000
# The app contract's attachment kinds; informational (a file is read by its name and content type).
ATTACHMENT_TYPES = ("file", "document", "image", "text")


class AttachmentInSchema(StrictSchema):
    """`{type, name, data, content_type}` (the app contract's shape) or `{filename, data, content_type}`."""

    type = fields.String(validate=validate.OneOf(ATTACHMENT_TYPES),
                         metadata={"description": "What the file is; its text is read by its name and content type"})
    name = fields.String(validate=validate.Length(min=1, max=255), metadata={"description": "The file's name"})
    filename = fields.String(validate=validate.Length(min=1, max=255), metadata={"description": "Alias of name"})
    content_type = fields.String(allow_none=True, validate=validate.Length(max=200))
    data = fields.String(required=True, metadata={"description": "The file's bytes, base64 (a data: URL works too)"})

    @validates_schema
    def _one_name(self, data, **kwargs):
        if "name" in data and "filename" in data and data["name"] != data["filename"]:
            raise ValidationError("Send the file's name once, as name (or filename).", field_name="name")
        if "name" not in data and "filename" not in data:
            raise ValidationError("Missing data for required field.", field_name="name")

    @post_load
    def _as_filename(self, data, **kwargs):
        data["filename"] = data.pop("name", None) or data["filename"]
        return data


def attachments_field() -> fields.List:
    return fields.List(fields.Nested(AttachmentInSchema), load_default=list,
                       validate=validate.Length(max=DEFAULT_MAX_ATTACHMENTS),
                       metadata={"description": "Files whose text the agent may use for the rest of the conversation"})


def _has_text(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must contain text, not only whitespace.")


def message_field() -> fields.String:
    """The user's message: some text, at most MAX_MESSAGE_CHARS characters."""
    return fields.String(required=True, validate=[validate.Length(min=1, max=MAX_MESSAGE_CHARS), _has_text],
                         metadata={"pattern": r"\S"})  # in the OpenAPI document: not only whitespace


def verbosity_field() -> fields.String:
    return fields.String(load_default="standard", validate=validate.OneOf(list(VERBOSITY_EVENTS)),
                         metadata={"description": "Which stream events are sent: minimal, standard (adds "
                                                  "tool.started/completed) or full (adds tool.progress, thinking.chunk)"})


class ToolCallSchema(Schema):
    id = fields.String()
    name = fields.String()
    tool_id = fields.String(allow_none=True)
    arguments = fields.Raw()
    status = fields.String(metadata={"enum": ["ok", "error", "timeout", "repeated"]})
    output = fields.Raw(allow_none=True)
    error = fields.Dict(allow_none=True)
    latency_ms = fields.Float()


class CitationSchema(Schema):
    index = fields.Integer()
    source = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    document_id = fields.String(allow_none=True)
    chunk_id = fields.String(allow_none=True)
    section = fields.String(allow_none=True, metadata={"description": "Heading path of the cited chunk"})
    page = fields.Integer(allow_none=True)
    text = fields.String()


class UsageSchema(Schema):
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer()
    cost = fields.Float()


class ChatMessageSchema(Schema):
    id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    role = fields.String(required=True, metadata={"enum": ["user", "assistant"]})
    content = fields.String(required=True)
    tool_calls = fields.List(fields.Nested(ToolCallSchema), required=True)
    citations = fields.List(fields.Nested(CitationSchema), required=True)
    status = fields.String(required=True, metadata={"enum": ["completed", "failed", "timeout"]})
    error = fields.Dict(allow_none=True)
    no_answer = fields.Boolean(required=True)
    model = fields.String(allow_none=True)
    latency_ms = fields.Float(allow_none=True)
    usage = fields.Nested(UsageSchema, required=True)
    created_at = UtcDateTime(required=True)
    timestamp = UtcDateTime(required=True, metadata={"description": "The same as created_at (the contract's name)"})


class AttachmentSchema(Schema):
    id = fields.String()
    filename = fields.String(required=True)
    content_type = fields.String(allow_none=True)
    size_bytes = fields.Integer(required=True)
    tokens = fields.Integer(required=True)
    message_id = fields.String(allow_none=True)


class ConversationSchema(Schema):
    id = fields.String(required=True)
    agent_id = fields.String(required=True)
    user_id = fields.String(allow_none=True)
    integration_id = fields.String(allow_none=True)
    session_id = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    message_count = fields.Integer(required=True)
    last_message_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class ConversationDetailSchema(ConversationSchema):
    messages = fields.List(fields.Nested(ChatMessageSchema), required=True)
    attachments = fields.List(fields.Nested(AttachmentSchema), required=True)


class ConversationWriteSchema(StrictSchema):
    agent_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    user_id = fields.String(allow_none=True, validate=validate.Length(max=200),
                            metadata={"description": "Your application's user, to find their conversations "
                                                    "(default for a signed-in user: their id)"})


class SendMessageSchema(StrictSchema):
    message = message_field()
    stream = StrictBoolean(load_default=False)
    verbosity = verbosity_field()
    attachments = attachments_field()


ConversationListArgs = list_args(
    "updated_at", "last_message_at",
    extra={"agent_id": fields.String(), "user_id": fields.String(), "integration_id": fields.String()},
    name="ConversationListArgs",
)


MessageListArgs = list_args(extra={"role": fields.String(validate=validate.OneOf(["user", "assistant"]))},
                            name="MessageListArgs")
