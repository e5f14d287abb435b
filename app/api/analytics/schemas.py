from marshmallow import Schema, fields, validate

from app.api.usage.schemas import period_fields

AnalyticsConversationArgs = Schema.from_dict(
    {"agent_id": fields.String(validate=validate.Length(min=1, max=40)), **period_fields()},
    name="AnalyticsConversationArgs",
)


class MessagesPerConversationSchema(Schema):
    mean = fields.Float(allow_none=True)
    median = fields.Float(allow_none=True)
    max = fields.Integer(allow_none=True)


class AnalyticsToolUsageSchema(Schema):
    name = fields.String(allow_none=True)
    tool_id = fields.String(allow_none=True)
    calls = fields.Integer(required=True)
    errors = fields.Integer(required=True)
    timeouts = fields.Integer(required=True)
    error_rate = fields.Float(allow_none=True, metadata={"description": "(errors + timeouts) / calls"})
    mean_latency_ms = fields.Float(allow_none=True)


class AnalyticsLatencySchema(Schema):
    p50 = fields.Float(allow_none=True)
    p90 = fields.Float(allow_none=True)
    p95 = fields.Float(allow_none=True)
    p99 = fields.Float(allow_none=True)
    mean = fields.Float(allow_none=True)


class AnalyticsTokensSchema(Schema):
    prompt = fields.Integer(required=True)
    completion = fields.Integer(required=True)


class ConversationAnalyticsSchema(Schema):
    conversations = fields.Integer(required=True, metadata={"description": "Conversations with a message in the period"})
    messages = fields.Integer(required=True)
    user_messages = fields.Integer(required=True)
    assistant_messages = fields.Integer(required=True)
    messages_per_conversation = fields.Nested(MessagesPerConversationSchema, required=True)
    tool_usage = fields.List(fields.Nested(AnalyticsToolUsageSchema), required=True)
    latency_ms = fields.Nested(AnalyticsLatencySchema, required=True, metadata={
        "description": "Whole-turn latency of assistant messages; percentiles by the nearest-rank method"})
    no_answer_rate = fields.Float(allow_none=True, metadata={"description": "no-answer replies / assistant messages"})
    failed_rate = fields.Float(allow_none=True, metadata={"description": "failed or timed-out replies / assistant messages"})
    tokens = fields.Nested(AnalyticsTokensSchema, required=True)
    cost = fields.Float(required=True)
