"""Human review of evaluation runs: request bodies and what reviewers see."""
from marshmallow import Schema, fields, validate

from app.api.common import StrictSchema, UtcDateTime, list_args
from app.models import REVIEW_STATUSES, VERDICTS


class ReviewCreateSchema(StrictSchema):
    select = fields.String(required=True, validate=validate.OneOf(("all", "failing", "sample")), metadata={
        "description": "all cases; failing ones (error, timeout, or a metric under its threshold, 0.5 without "
                       "one); or a seeded random sample of `n`"})
    n = fields.Integer(validate=validate.Range(min=1, max=100_000),
                       metadata={"description": "How many cases to sample (select: sample)"})
    seed = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**31 - 1),
                          metadata={"description": "The same seed draws the same cases"})


class CaseReviewItemSchema(Schema):
    id = fields.String(required=True)
    evaluation_id = fields.String(required=True)
    run_id = fields.String(required=True)
    case_id = fields.String(required=True)
    ordinal = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"enum": list(REVIEW_STATUSES)})
    claimed_by = fields.String(allow_none=True, metadata={"description": "API key id of the reviewer holding it"})
    claimed_at = UtcDateTime(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    verdict = fields.String(allow_none=True, metadata={"enum": list(VERDICTS)})
    score = fields.Integer(allow_none=True)
    comment = fields.String(allow_none=True)
    graded_by = fields.String(allow_none=True)
    graded_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class GradeHistorySchema(Schema):
    verdict = fields.String(allow_none=True)
    score = fields.Integer(allow_none=True)
    comment = fields.String(allow_none=True)
    graded_by = fields.String(allow_none=True)
    created_at = UtcDateTime(required=True)


class CaseReviewItemDetailSchema(CaseReviewItemSchema):
    input = fields.Raw(allow_none=True)
    expected_output = fields.Raw(allow_none=True)
    expected_sources = fields.List(fields.Dict(), required=True)
    answer = fields.String(allow_none=True)
    citations = fields.List(fields.Dict(), required=True)
    retrieved = fields.List(fields.Dict(), required=True, metadata={"description": "The passages retrieved"})
    result = fields.Dict(allow_none=True, metadata={"description": "status, error, scores, metric_errors"})
    grades = fields.List(fields.Nested(GradeHistorySchema), required=True,
                         metadata={"description": "Every grade given, oldest first"})


class ReviewCreatedSchema(Schema):
    run_id = fields.String(required=True)
    select = fields.String(required=True)
    selected = fields.Integer(required=True)
    created = fields.Integer(required=True)
    already_under_review = fields.Integer(required=True)
    items = fields.List(fields.Nested(CaseReviewItemSchema), required=True)


class GradeSchema(StrictSchema):
    verdict = fields.String(validate=validate.OneOf(VERDICTS), allow_none=True)
    score = fields.Integer(validate=validate.Range(min=1, max=5), allow_none=True)
    comment = fields.String(validate=validate.Length(max=10_000), allow_none=True)


class ReviewSummarySchema(Schema):
    items = fields.Dict(required=True, metadata={"description": "Review items by status"})
    human = fields.Dict(required=True, metadata={
        "description": "The human metric: score (pass rate over verdicts), ci_low, ci_high (95% bootstrap), covered "
                       "(verdicts), total (cases), coverage, graded, score_mean (1-5), scored"})
    agreement = fields.Dict(required=True, metadata={
        "description": "Per LLM judge metric: kappa (Cohen, pass/fail, the judge passing from judge_pass_at) and "
                       "spearman (judge score vs human 1-5), each with n and a reason when undefined"})


ReviewItemListArgs = list_args("ordinal", "updated_at", name="ReviewItemListArgs", extra={
    "evaluation_id": fields.String(validate=validate.Length(max=40)),
    "run_id": fields.String(validate=validate.Length(max=40)),
    "status": fields.String(validate=validate.OneOf(REVIEW_STATUSES)),
})
