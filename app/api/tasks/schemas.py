from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, validate

from app.api.common import PartialSchema, StrictSchema, UtcDateTime, list_args
from app.models import TASK_PRIORITIES, TASK_STATUSES

SCHEDULE_HELP = ('{"interval_minutes": 60} or {"cron": "0 3 * * *"}: the task runs again whenever it is due '
                 "(as knowledge sources' schedules)")


class UtcInstant(fields.String):
    """An ISO 8601 datetime (naive means UTC), loaded as an aware UTC datetime."""

    default_error_messages = {"invalid_instant": "Not a valid ISO 8601 datetime, e.g. 2026-12-07T15:00:00Z."}

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"format": "date-time", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            parsed = datetime.fromisoformat(text)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise self.make_error("invalid_instant") from exc


def _json_object_or_null(value) -> None:
    if value is not None and not isinstance(value, dict):
        raise ValidationError("must be a JSON object or null")


class TaskSchema(Schema):
    id = fields.String(required=True)
    agent_id = fields.String(required=True)
    title = fields.String(required=True)
    instructions = fields.String(required=True)
    priority = fields.String(required=True, metadata={"enum": list(TASK_PRIORITIES)})
    status = fields.String(required=True, metadata={"enum": list(TASK_STATUSES)})
    due_at = UtcDateTime(allow_none=True)
    schedule = fields.Dict(allow_none=True, metadata={"description": SCHEDULE_HELP})
    next_run_at = UtcDateTime(allow_none=True, metadata={"description": "When a scheduled task runs next"})
    conversation_id = fields.String(allow_none=True, metadata={"description": "The conversation it runs in"})
    result = fields.Dict(allow_none=True, metadata={
        "description": "The agent's answer: message_id, content, citations, tool_calls, no_answer, usage, "
                       "latency_ms, model"})
    error = fields.Dict(allow_none=True, metadata={"description": "{code, message} of the last failure"})
    attempts = fields.Integer(required=True)
    max_attempts = fields.Integer(required=True)
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class TaskWriteSchema(StrictSchema):
    agent_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    instructions = fields.String(required=True, validate=validate.Length(min=1, max=100_000))
    priority = fields.String(load_default="medium", validate=validate.OneOf(TASK_PRIORITIES))
    due_at = UtcInstant(allow_none=True)
    schedule = fields.Raw(allow_none=True, validate=_json_object_or_null,
                          metadata={"type": "object", "nullable": True, "description": SCHEDULE_HELP})
    max_attempts = fields.Integer(load_default=2, strict=True, validate=validate.Range(min=1, max=10),
                                  metadata={"description": "Runs a lost worker may cost before the task fails"})


class TaskUpdateSchema(PartialSchema, TaskWriteSchema):
    """Every field optional: only the fields sent change."""


TaskListArgs = list_args(
    "updated_at", "finished_at", "priority_rank",
    extra={
        "agent_id": fields.String(validate=validate.Length(min=1, max=40)),
        "status": fields.String(validate=validate.OneOf(TASK_STATUSES)),
        "priority": fields.String(validate=validate.OneOf(TASK_PRIORITIES)),
        "since": UtcInstant(metadata={"description": "Only tasks created at or after this instant"}),
    },
    name="TaskListArgs",
)
