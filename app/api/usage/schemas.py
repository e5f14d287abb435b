from datetime import date, datetime

from marshmallow import Schema, fields, validate

from app.services.usage_stats import GRANULARITIES, OPERATIONS, SHAPES

DATE_HELP = (
    "YYYY-MM-DD (a UTC day) or an ISO 8601 datetime (naive means UTC). "
    "start_date is inclusive; an end_date day is included whole, an end_date datetime up to that instant."
)


class DateOrDateTime(fields.String):
    """A query bound: `YYYY-MM-DD` loads as a date, anything longer as an ISO 8601 datetime."""

    default_error_messages = {
        "invalid_bound": "Not a valid date or datetime: use YYYY-MM-DD or ISO 8601, e.g. 2026-11-20T13:00:00Z.",
    }

    def __init__(self, **kwargs):
        # The OpenAPI document says the same: an RFC 3339 date or date-time.
        kwargs["metadata"] = {"anyOf": [{"format": "date"}, {"format": "date-time"}], **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> date | datetime:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            return date.fromisoformat(text) if len(text) <= 10 else datetime.fromisoformat(text)
        except ValueError as exc:
            raise self.make_error("invalid_bound") from exc


def period_fields() -> dict[str, fields.Field]:
    return {
        "start_date": DateOrDateTime(metadata={"description": DATE_HELP, "example": "2026-11-01"}),
        "end_date": DateOrDateTime(metadata={"description": DATE_HELP, "example": "2026-11-30"}),
    }


_ID = validate.Length(min=1, max=40)


class UsageFilterArgs(Schema):
    entity_type = fields.String(validate=_ID, metadata={"description": "rag_tool, agent, evaluation, api_tool ..."})
    entity_id = fields.String(validate=_ID)
    operation = fields.String(validate=validate.OneOf(OPERATIONS))
    conversation_id = fields.String(validate=_ID)
    integration_id = fields.String(validate=_ID)


class UsageStatsArgs(UsageFilterArgs):
    start_date = DateOrDateTime(metadata={"description": DATE_HELP + " Default: no lower bound."})
    end_date = DateOrDateTime(metadata={"description": DATE_HELP + " Default: no upper bound."})
    shape = fields.String(load_default="list", validate=validate.OneOf(SHAPES), metadata={
        "description": "list (default): by_model, by_entity and by_operation are lists of groups; keyed: "
                       "objects keyed by model name, entity id and operation (the contract's form)"})


class UsageCostArgs(UsageFilterArgs):
    start_date = DateOrDateTime(metadata={"description": DATE_HELP + " Default: 29 days before end_date."})
    end_date = DateOrDateTime(metadata={"description": DATE_HELP + " Default: today (UTC)."})
    granularity = fields.String(load_default="day", validate=validate.OneOf(GRANULARITIES))


class _UsageNumbers(Schema):
    calls = fields.Integer(required=True)
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    cached_tokens = fields.Integer(required=True, metadata={"description": "Part of prompt_tokens served from cache"})
    total_tokens = fields.Integer(required=True, metadata={"description": "prompt_tokens + completion_tokens"})
    cost = fields.Float(required=True)


class UsageByModelSchema(_UsageNumbers):
    model_ref = fields.String(allow_none=True, metadata={"description": "The configured model's id (model_…)"})
    model_name = fields.String(allow_none=True, metadata={"description": "The provider's model name"})


class UsageByEntitySchema(_UsageNumbers):
    entity_type = fields.String(required=True)
    entity_id = fields.String(allow_none=True)


class UsageByOperationSchema(_UsageNumbers):
    operation = fields.String(required=True)


class _ListOrKeyed(fields.Field):
    """Groups as a list, or (shape=keyed) an object of the same groups keyed by `key`."""

    def __init__(self, group: type[Schema], key: str):
        self.group = group()
        super().__init__(required=True, metadata={
            "description": f"A list of groups; with shape=keyed an object keyed by {key}",
            "oneOf": [{"type": "array", "items": {"type": "object"}},
                      {"type": "object", "additionalProperties": {"type": "object"}}]})

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, dict):
            return {key: self.group.dump(group) for key, group in value.items()}
        return self.group.dump(value, many=True)


class UsageStatsSchema(Schema):
    calls = fields.Integer(required=True)
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    cached_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)
    total_cost = fields.Float(required=True, metadata={"description": "Sum of the rows' costs, rounded to 10 decimals"})
    by_model = _ListOrKeyed(UsageByModelSchema, "model name")
    by_entity = _ListOrKeyed(UsageByEntitySchema, "entity id")
    by_operation = _ListOrKeyed(UsageByOperationSchema, "operation")


class UsageCostPointSchema(_UsageNumbers):
    date = fields.String(required=True, metadata={"description": "The UTC day, YYYY-MM-DD"})


class UsageCostSeriesSchema(Schema):
    granularity = fields.String(required=True, metadata={"enum": list(GRANULARITIES)})
    start_date = fields.String(required=True, metadata={"description": "First day of the series"})
    end_date = fields.String(required=True, metadata={"description": "Last day of the series"})
    total_cost = fields.Float(required=True)
    series = fields.List(fields.Nested(UsageCostPointSchema), required=True,
                         metadata={"description": "One point per day, days without usage as zeros"})
