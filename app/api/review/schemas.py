from marshmallow import Schema, fields, validate

from app.api.common import StrictSchema, UtcDateTime, limit_field, page_field
from app.models import HANDOFF_STATUSES

# Kinds of review work listed in the queue; the lead adds `evaluation_review` when merging it.
REVIEW_KINDS = ("handoff", "evaluation_review")


class ReviewQueueArgs(Schema):
    status = fields.List(fields.String(validate=validate.OneOf(HANDOFF_STATUSES)),
                         metadata={"description": "Repeat for several: status=PENDING&status=IN_PROGRESS"})
    overdue = fields.Boolean(metadata={"description": "true: past the deadline and not completed; false: not"})
    kind = fields.List(fields.String(validate=validate.OneOf(REVIEW_KINDS)),
                       metadata={"description": "Which kinds of review work; default every kind"})
    page = page_field()
    limit = limit_field()


class RequesterSchema(Schema):
    type = fields.String(required=True, metadata={"enum": ["account", "conversation", "evaluation"]})
    id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)


class QueueItemSchema(Schema):
    kind = fields.String(required=True, metadata={"enum": list(REVIEW_KINDS)})
    id = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(HANDOFF_STATUSES)})
    deadline_at = UtcDateTime(required=True, allow_none=True,
                              metadata={"description": "created_at + max_minutes (hand-off requests); null for "
                                                       "evaluation review items, which have no deadline"})
    overdue = fields.Boolean(required=True)
    flags = fields.List(fields.String(), required=True,
                        metadata={"description": "no_owner_contact: the instructions lack the owner-contact block"})
    requester = fields.Nested(RequesterSchema, required=True)
    claimed_by = fields.String(allow_none=True, metadata={"description": "The reviewer's key id"})
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class ReviewMessageSchema(Schema):
    id = fields.String(required=True)
    request_id = fields.String(required=True)
    author = fields.String(required=True, metadata={"enum": ["requester", "reviewer"]})
    content = fields.String(required=True)
    created_at = UtcDateTime(required=True)


class ReviewEventSchema(Schema):
    action = fields.String(required=True, metadata={"description": "created, claimed, released, message, "
                                                                   "completed, answered_in_conversation, webhook_*"})
    actor = fields.String(allow_none=True, metadata={"description": "Key id, account id, or magnet"})
    at = UtcDateTime(required=True)
    details = fields.Dict(required=True)


class ReviewTaskSchema(QueueItemSchema):
    instructions = fields.String(required=True)
    objective = fields.String(required=True)
    max_minutes = fields.Integer(required=True)
    relaxed = fields.Boolean(required=True)
    webhook_url = fields.String(allow_none=True)
    result = fields.String(allow_none=True)
    claimed_at = UtcDateTime(allow_none=True)
    completed_by = fields.String(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    webhook_status = fields.String(allow_none=True, metadata={"enum": ["pending", "delivered", "failed", None]})
    webhook_attempts = fields.Integer(required=True)
    messages = fields.List(fields.Nested(ReviewMessageSchema), required=True)
    events = fields.List(fields.Nested(ReviewEventSchema), required=True)


class ReviewMessageCreateSchema(StrictSchema):
    content = fields.String(required=True, validate=validate.Length(min=1, max=10_000))


class ReviewCompleteSchema(StrictSchema):
    result = fields.String(required=True, validate=validate.Length(min=1, max=50_000))


class HandoffInvitationCreateSchema(StrictSchema):
    note = fields.String(allow_none=True, validate=validate.Length(max=500))
    expires_in_hours = fields.Integer(load_default=72, strict=True, validate=validate.Range(min=1, max=24 * 90))


class HandoffInvitationSchema(Schema):
    id = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "Shown this once only"})
    note = fields.String(allow_none=True)
    expires_at = UtcDateTime(required=True)
    created_at = UtcDateTime(required=True)


# `{"success": true, "data": [messages]}`: a task's messages are few, so not paged.
ReviewMessageListEnvelope = Schema.from_dict(
    {"success": fields.Boolean(required=True),
     "data": fields.List(fields.Nested(ReviewMessageSchema), required=True)}, name="ReviewMessageListEnvelope")
