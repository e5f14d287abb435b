"""Feedback on agents' answers, and test cases made from rated conversations."""
from marshmallow import Schema, fields, validate

from app.api.common import StrictBoolean, StrictSchema, UtcDateTime, list_args
from app.api.evaluations.schemas import TestCaseSchema
from app.models import RATINGS


class FeedbackWriteSchema(StrictSchema):
    rating = fields.String(required=True, validate=validate.OneOf(RATINGS))
    comment = fields.String(validate=validate.Length(max=10_000), allow_none=True)
    comment_is_correction = StrictBoolean(load_default=False, metadata={
        "description": "The comment is the right answer: it becomes the expected output of a test case "
                       "made from this message"})


class FeedbackSchema(Schema):
    id = fields.String(required=True)
    message_id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    rater = fields.String(required=True, metadata={"description": "The integration or API key that gave it"})
    source = fields.String(required=True, metadata={"enum": ["app", "platform"]})
    rating = fields.String(required=True, metadata={"enum": list(RATINGS)})
    comment = fields.String(allow_none=True)
    comment_is_correction = fields.Boolean(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


FeedbackListArgs = list_args("updated_at", name="FeedbackListArgs", extra={
    "rating": fields.String(validate=validate.OneOf(RATINGS)),
    "source": fields.String(validate=validate.OneOf(("app", "platform"))),
    "conversation_id": fields.String(validate=validate.Length(max=40)),
    "agent_id": fields.String(validate=validate.Length(max=40)),
})


class FromConversationsSchema(StrictSchema):
    message_ids = fields.List(fields.String(validate=validate.Length(min=1, max=40)),
                              validate=validate.Length(min=1, max=1000),
                              metadata={"description": "The assistant messages to turn into test cases"})
    rating = fields.String(validate=validate.OneOf(RATINGS),
                           metadata={"description": "Or: every message with feedback of this rating"})
    agent_id = fields.String(validate=validate.Length(max=40),
                             metadata={"description": "Or (also): messages of this agent's conversations"})
    corrections = fields.Dict(keys=fields.String(validate=validate.Length(max=40)),
                              values=fields.String(validate=validate.Length(min=1, max=100_000)),
                              validate=validate.Length(max=1000), metadata={
        "description": "message id -> the reviewer's correct answer (the case's expected output); without one, "
                       "a feedback comment marked comment_is_correction is used"})


class SkippedSchema(Schema):
    message_id = fields.String(required=True)
    reason = fields.String(required=True)


class FromConversationsResultSchema(Schema):
    created = fields.Integer(required=True)
    test_cases = fields.List(fields.Nested(TestCaseSchema), required=True)
    skipped = fields.List(fields.Nested(SkippedSchema), required=True)
    total = fields.Integer(required=True, metadata={"description": "The evaluation's case count now"})
