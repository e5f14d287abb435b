from marshmallow import Schema, fields, validate

from app.api.common import PartialSchema, StrictSchema, UtcDateTime, list_args
from app.models import AGENT_STATUSES
from app.services.agent_presence import PRESENCES


class TaskStatsSchema(Schema):
    total = fields.Integer(required=True)
    assigned = fields.Integer(required=True)
    in_progress = fields.Integer(required=True)
    completed = fields.Integer(required=True)
    failed = fields.Integer(required=True)


class AgentSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    system_prompt = fields.String(allow_none=True)
    model_id = fields.String(allow_none=True, metadata={"description": "A chat model's id (model_…)"})
    temperature = fields.Float(required=True)
    max_tokens = fields.Integer(required=True)
    tools = fields.List(fields.String(), required=True, metadata={
        "description": "Tool ids (apitool_…, rag_…, ret_…) and opted-in built-in tools (remember, recall, ask_agent)"})
    topics = fields.List(fields.String(), required=True)
    status = fields.String(required=True, metadata={"enum": list(AGENT_STATUSES)})
    max_iterations = fields.Integer(required=True)
    tool_timeout_seconds = fields.Float(required=True)
    turn_timeout_seconds = fields.Float(required=True)
    memory_messages = fields.Integer(required=True)
    reports_to = fields.String(allow_none=True, metadata={"description": "The id of the agent it reports to"})
    max_concurrent_tasks = fields.Integer(required=True, metadata={"description": "Its tasks that may run at once"})
    presence = fields.String(metadata={"enum": list(PRESENCES), "description": "Derived from real state: see "
                                       "the README's Agent operations section"})
    last_seen = UtcDateTime(allow_none=True)
    last_activity = UtcDateTime(allow_none=True)
    task_stats = fields.Nested(TaskStatsSchema)
    last_wake_reason = fields.String(allow_none=True, metadata={"description": "Why it was last woken"})
    last_woken_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class AgentWriteSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    role = fields.String(allow_none=True, validate=validate.Length(max=5000))
    system_prompt = fields.String(allow_none=True, validate=validate.Length(max=100_000))
    model_id = fields.String(
        validate=validate.Length(min=1, max=300),
        metadata={"description": "A chat model by id (model_…), name, or provider model id (\"gpt-4o-mini\", "
                                 "when one chat model serves it); default: the default chat model"},
    )
    temperature = fields.Float(load_default=0.2, validate=validate.Range(min=0, max=2))
    max_tokens = fields.Integer(load_default=1024, strict=True, validate=validate.Range(min=1, max=200_000))
    tools = fields.List(
        fields.String(validate=validate.Length(min=1, max=40)), load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "Ids of the tools the agent may call; each must exist, no duplicates"},
    )
    topics = fields.List(
        fields.String(validate=validate.Length(min=1, max=200)), load_default=list,
        validate=validate.Length(max=100),
    )
    status = fields.String(load_default="active", validate=validate.OneOf(AGENT_STATUSES))
    max_iterations = fields.Integer(load_default=6, strict=True, validate=validate.Range(min=1, max=25),
                                    metadata={"description": "Model calls per turn; the last one may not call tools"})
    tool_timeout_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0.1, max=600))
    turn_timeout_seconds = fields.Float(load_default=120.0, validate=validate.Range(min=1, max=1800))
    memory_messages = fields.Integer(load_default=20, strict=True, validate=validate.Range(min=0, max=200),
                                     metadata={"description": "Earlier messages remembered (fewer if they do "
                                                              "not fit the model's context window)"})
    reports_to = fields.String(allow_none=True, validate=validate.Length(min=1, max=200),
                               metadata={"description": "The agent it reports to (id or name); no cycles"})
    max_concurrent_tasks = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=50),
                                          metadata={"description": "How many of its tasks may run at once"})


class AgentUpdateSchema(PartialSchema, AgentWriteSchema):
    """Every field optional: only the fields sent change."""


AgentListArgs = list_args(
    "name",
    "updated_at",
    extra={
        "status": fields.String(validate=validate.OneOf(AGENT_STATUSES)),
        "model_id": fields.String(),
        "presence": fields.String(validate=validate.OneOf(PRESENCES)),
        "role": fields.String(validate=validate.Length(min=1, max=1000),
                              metadata={"description": "Agents whose role is exactly this"}),
    },
    name="AgentListArgs",
)
