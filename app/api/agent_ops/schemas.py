"""Schemas of agent operations: soul, memory notes, messages between agents, hierarchy, agents as code."""
from marshmallow import Schema, fields, validate

from app.api.common import StrictSchema, UtcDateTime
from app.models import AGENT_MESSAGE_TYPES, AGENT_STATUSES

SOUL_MAX_CHARS = 100_000


class SoulVersionSchema(Schema):
    version = fields.Integer(required=True)
    system_prompt = fields.String(allow_none=True)
    created_at = UtcDateTime(required=True)


class SoulSchema(Schema):
    agent_id = fields.String(required=True)
    system_prompt = fields.String(allow_none=True, metadata={"description": "The latest version: what the agent uses"})
    version = fields.Integer(required=True)
    versions = fields.List(fields.Nested(SoulVersionSchema), required=True, metadata={"description": "Newest first"})


class SoulWriteSchema(StrictSchema):
    system_prompt = fields.String(required=True, validate=validate.Length(min=1, max=SOUL_MAX_CHARS))


class NoteSchema(Schema):
    key = fields.String(required=True)
    text = fields.String(required=True)
    tags = fields.List(fields.String(), required=True)
    version = fields.Integer(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class MemorySchema(Schema):
    agent_id = fields.String(required=True)
    notes = fields.List(fields.Nested(NoteSchema), required=True)
    count = fields.Integer(required=True)
    max_notes = fields.Integer(required=True, metadata={"description": "MAGNET_AGENT_MEMORY_MAX_NOTES"})


class NoteWriteSchema(StrictSchema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    text = fields.String(required=True, validate=validate.Length(min=1, max=100_000),
                         metadata={"description": "At most MAGNET_AGENT_MEMORY_MAX_NOTE_CHARS characters"})
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list,
                       validate=validate.Length(max=20))


class MemoryWriteSchema(StrictSchema):
    notes = fields.List(fields.Nested(NoteWriteSchema), required=True, validate=validate.Length(min=1, max=200),
                        metadata={"description": "Created or replaced by key, all or none; 409 memory_full "
                                                 "when the new keys would not fit"})


class NoteVersionSchema(Schema):
    key = fields.String(required=True)
    version = fields.Integer(required=True)
    action = fields.String(required=True, metadata={"enum": ["put", "delete"]})
    text = fields.String(allow_none=True)
    tags = fields.List(fields.String(), required=True)
    changed_by = fields.String(required=True, metadata={"enum": ["api", "agent"]})
    created_at = UtcDateTime(required=True)


class NoteHistoryArgs(StrictSchema):
    key = fields.String(validate=validate.Length(min=1, max=200))


class RecallArgs(StrictSchema):
    query = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    limit = fields.Integer(load_default=5, validate=validate.Range(min=1, max=20))


class RecalledNoteSchema(Schema):
    key = fields.String(required=True)
    text = fields.String(required=True)
    tags = fields.List(fields.String(), required=True)
    score = fields.Float(required=True)
    updated_at = UtcDateTime(required=True)


class AgentMessageWriteSchema(StrictSchema):
    sender = fields.String(required=True, data_key="from", validate=validate.Length(min=1, max=200),
                           metadata={"description": "The sending agent's name or id"})
    recipient = fields.String(required=True, data_key="to", validate=validate.Length(min=1, max=200),
                              metadata={"description": "The receiving agent's name or id"})
    content = fields.String(required=True, validate=validate.Length(min=1, max=20_000))
    type = fields.String(load_default="message", validate=validate.OneOf(AGENT_MESSAGE_TYPES))


class AgentMessageSchema(Schema):
    id = fields.String(required=True)
    sender = fields.String(required=True, data_key="from", attribute="from")
    from_name = fields.String(allow_none=True)
    recipient = fields.String(required=True, data_key="to", attribute="to")
    to_name = fields.String(allow_none=True)
    type = fields.String(required=True, metadata={"enum": list(AGENT_MESSAGE_TYPES)})
    content = fields.String(required=True)
    in_reply_to = fields.String(allow_none=True)
    read = fields.Boolean(required=True)
    read_at = UtcDateTime(allow_none=True)
    error = fields.Dict(allow_none=True)
    created_at = UtcDateTime(required=True)


class CommsArgs(StrictSchema):
    agent = fields.String(validate=validate.Length(min=1, max=200),
                          metadata={"description": "Only messages this agent (name or id) sent or received"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    unread = fields.Boolean(truthy={"true"}, falsy={"false"},
                            metadata={"description": "true: only unread; false: only read"})


class ProcessedSchema(Schema):
    message_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["replied", "read", "failed"]})
    reply_id = fields.String(allow_none=True)
    error = fields.Dict(allow_none=True)


class InboxResultSchema(Schema):
    processed = fields.List(fields.Nested(ProcessedSchema), required=True)


class HierarchyNodeSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(allow_none=True)
    status = fields.String(required=True)
    reports = fields.List(fields.Nested(lambda: HierarchyNodeSchema()), required=True)


class SyncEntrySchema(StrictSchema):
    """One agent of an agents-as-code document; fields left out keep their value."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    role = fields.String(allow_none=True, validate=validate.Length(max=5000))
    system_prompt = fields.String(allow_none=True, validate=validate.Length(max=SOUL_MAX_CHARS))
    soul = fields.String(allow_none=True, validate=validate.Length(max=SOUL_MAX_CHARS),
                         metadata={"description": "Another name for system_prompt"})
    model = fields.String(allow_none=True, validate=validate.Length(min=1, max=300),
                          metadata={"description": "A chat model's name (or id); default: the default chat model"})
    tools = fields.List(fields.String(validate=validate.Length(min=1, max=250)), validate=validate.Length(max=100),
                        metadata={"description": "Tool names; built-in: remember, recall, ask_agent; "
                                                 "rag:NAME, retrieval:NAME, api:NAME when kinds share a name"})
    reports_to = fields.String(allow_none=True, validate=validate.Length(min=1, max=200),
                               metadata={"description": "The manager's agent name"})
    temperature = fields.Float(validate=validate.Range(min=0, max=2))
    max_tokens = fields.Integer(strict=True, validate=validate.Range(min=1, max=200_000))
    topics = fields.List(fields.String(validate=validate.Length(min=1, max=200)), validate=validate.Length(max=100))
    status = fields.String(validate=validate.OneOf(AGENT_STATUSES))
    max_iterations = fields.Integer(strict=True, validate=validate.Range(min=1, max=25))
    tool_timeout_seconds = fields.Float(validate=validate.Range(min=0.1, max=600))
    turn_timeout_seconds = fields.Float(validate=validate.Range(min=1, max=1800))
    memory_messages = fields.Integer(strict=True, validate=validate.Range(min=0, max=200))


class AgentsDocumentSchema(StrictSchema):
    agents = fields.List(fields.Nested(SyncEntrySchema), required=True, validate=validate.Length(max=500))


class SyncResultSchema(Schema):
    synced = fields.Integer(required=True, metadata={"description": "Entries in the document"})
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    agents = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                         metadata={"description": "Each agent's name: created, updated or unchanged"})
