"""Request and response shapes of evaluations, their test cases, runs and results."""
from marshmallow import Schema, fields, validate

from app.api.common import (
    PaginationSchema,
    PartialSchema,
    StrictSchema,
    UtcDateTime,
    limit_field,
    list_args,
    page_field,
)
from app.models import EVALUATION_TYPES

RUN_STATUSES = ["queued", "running", "completed", "failed", "cancelled"]


class TestCaseInSchema(Schema):
    """Validated in depth by the service (aliases, graded sources, line numbers); this only documents it."""

    input = fields.String(required=True)
    expected_output = fields.Raw(allow_none=True, metadata={"description": "A string or a list of acceptable answers"})
    expected_sources = fields.List(fields.Raw(), metadata={
        "description": "Document ids, paths/URLs or chunk ids; strings or {\"id\", \"grade\"}"})
    expected_no_answer = fields.Boolean()
    metadata = fields.Dict()
    filters = fields.Dict(allow_none=True)


_settings_doc = {"description": "concurrency (1-16, default 4), timeout_s (1-600, default 60), retries (0-5, "
                                "default 1), judge_model_id, model_id and variable (prompt_template targets)"}
_metrics_doc = {"description": "Names like \"ndcg@10\", \"recall@5\", \"mrr\", \"token_f1\", or objects "
                               "{\"name\": \"faithfulness\", \"repeats\": 3}"}


class EvaluationWriteSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True)
    type = fields.String(required=True, validate=validate.OneOf(EVALUATION_TYPES))
    target_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    metrics = fields.List(fields.Raw(), metadata=_metrics_doc)
    thresholds = fields.Dict(keys=fields.String(), values=fields.Float(), metadata={
        "description": "Minimum aggregate per metric, e.g. {\"ndcg@10\": 0.7}; any miss fails the run"})
    settings = fields.Dict(metadata=_settings_doc)
    test_cases = fields.List(fields.Raw(metadata={"type": "object"}),
                             metadata={"description": "Replaces the suite's test cases"})


class EvaluationUpdateSchema(EvaluationWriteSchema, PartialSchema):
    pass


class EvaluationSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    type = fields.String(required=True, metadata={"enum": list(EVALUATION_TYPES)})
    target_id = fields.String(required=True)
    metrics = fields.List(fields.Dict(), required=True)
    thresholds = fields.Dict(required=True)
    settings = fields.Dict(required=True)
    test_case_count = fields.Integer(required=True)
    last_run = fields.Dict(allow_none=True, metadata={"description": "id, status, passed, finished_at"})
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class TestCaseSchema(Schema):
    id = fields.String(required=True)
    ordinal = fields.Integer(required=True)
    input = fields.String(required=True)
    expected_output = fields.Raw(allow_none=True)
    expected_sources = fields.List(fields.Dict(), required=True)
    expected_no_answer = fields.Boolean(required=True)
    metadata = fields.Dict(required=True)
    filters = fields.Dict(allow_none=True)


class ImportResultSchema(Schema):
    imported = fields.Integer(required=True)
    total = fields.Integer(required=True)
    format = fields.String(required=True)
    replaced = fields.Boolean(required=True)


class ImportArgs(Schema):
    format = fields.String(validate=validate.OneOf(("json", "jsonl", "csv")), metadata={
        "description": "Default: from the file name, the content type, then the content"})
    replace = fields.Boolean(load_default=False, metadata={"description": "Replace the cases instead of adding"})


class ImportFileSchema(Schema):
    file = fields.Raw(metadata={"type": "string", "format": "binary"})


class RunRequestSchema(StrictSchema):
    thresholds = fields.Dict(keys=fields.String(), values=fields.Float(), metadata={
        "description": "Extra or stricter thresholds for this run only"})


class EvaluationRunSchema(Schema):
    id = fields.String(required=True)
    evaluation_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": RUN_STATUSES})
    trigger = fields.String(required=True)
    passed = fields.Boolean(allow_none=True, metadata={"description": "null without thresholds or if cancelled"})
    progress = fields.Method("_progress", metadata={"type": "object", "description": "cases done / total"})
    cases_failed = fields.Integer(required=True)
    metrics = fields.Dict(required=True, metadata={
        "description": "Per metric: score, ci_low, ci_high (95% bootstrap), covered, total, errors (scoring "
                       "failed), not_applicable (the case gives it nothing to score), spread (sample standard "
                       "deviation of the per-case scores)"})
    thresholds = fields.Dict(required=True)
    totals = fields.Dict(required=True)
    target_snapshot = fields.Dict(required=True)
    message = fields.String(allow_none=True)
    cancel_requested = fields.Boolean(required=True)
    created_at = UtcDateTime(required=True)
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    human_review = fields.Method("_human_review", metadata={
        "type": "object", "nullable": True,
        "description": "null until cases are under human review; then items by status, the `human` metric "
                       "(pass rate with its 95% CI, coverage = graded / cases) and each LLM judge's agreement "
                       "with the humans (Cohen's kappa on pass/fail, Spearman on 1-5, with n)"})

    def _progress(self, obj):
        return {"done": obj.cases_done, "total": obj.cases_total}

    def _human_review(self, obj):
        from app.services.reviews import run_summary

        return run_summary(obj)


class EvaluationResultSchema(Schema):
    id = fields.String(required=True)
    case_id = fields.String(required=True)
    ordinal = fields.Integer(required=True)
    input = fields.String(allow_none=True)
    expected_output = fields.Raw(allow_none=True)
    expected_sources = fields.List(fields.Dict(), required=True)
    metadata = fields.Dict(required=True, metadata={"description": "The case's metadata (e.g. a BEIR query id)"})
    status = fields.String(required=True, metadata={"enum": ["ok", "error", "timeout"]})
    error = fields.String(allow_none=True)
    scores = fields.Dict(required=True)
    metric_errors = fields.Dict(required=True, metadata={"description": "Metrics whose scoring failed, and why"})
    not_applicable = fields.Dict(required=True, metadata={
        "description": "Metrics the case gives nothing to score (no expected sources or answer), and why"})
    details = fields.Dict(required=True)
    warnings = fields.List(fields.String(), required=True)
    human_review = fields.Dict(allow_none=True, metadata={
        "description": "The human grade of this case (verdict, score, comment, graded_by), null if not graded"})
    answer = fields.String(allow_none=True)
    retrieved = fields.List(fields.Dict(), required=True, metadata={
        "description": "Ranked passages: chunk_id, document_id, external_id, score (content for the first 10)"})
    output = fields.Dict(required=True, metadata={"description": "answer, no_answer_reason, citations, retrieved"})
    latency_ms = fields.Float(allow_none=True)
    tokens = fields.Dict(required=True)
    cost = fields.Float(required=True)
    attempts = fields.Integer(required=True)


class EvaluationResultsSchema(Schema):
    run = fields.Nested(EvaluationRunSchema, required=True)
    results = fields.List(fields.Nested(EvaluationResultSchema), required=True)


ResultsEnvelope = Schema.from_dict({
    "success": fields.Boolean(required=True),
    "data": fields.Nested(EvaluationResultsSchema, required=True),
    "pagination": fields.Nested(PaginationSchema, required=True, metadata={"description": "of the results"}),
}, name="EvaluationResultsEnvelope")


class ResultsArgs(Schema):
    run_id = fields.String(metadata={"description": "Default: the latest run"})
    status = fields.String(validate=validate.OneOf(("ok", "error", "timeout")))
    page = page_field()
    limit = limit_field()


class CompareArgs(Schema):
    base = fields.String(required=True, metadata={"description": "The run compared against (e.g. main)"})
    head = fields.String(required=True, metadata={"description": "The run being judged"})
    alpha = fields.Float(load_default=0.05, validate=validate.Range(min=0.0001, max=0.5))


class ComparisonSchema(Schema):
    base_run_id = fields.String(required=True)
    head_run_id = fields.String(required=True)
    evaluation_id = fields.String(required=True, metadata={"description": "The base run's evaluation"})
    head_evaluation_id = fields.String(required=True)
    case_matching = fields.Dict(required=True, metadata={
        "description": "How cases were paired: by case id (one evaluation), or by content (two evaluations with "
                       "the same inputs and expectations): matched, pairs {base_case_id, head_case_id}, "
                       "unmatched_base_cases, unmatched_head_cases; per-case results are keyed by the base case id"})
    alpha = fields.Float(required=True)
    regressed = fields.List(fields.String(), required=True, metadata={"description": "Metrics significantly worse"})
    improved = fields.List(fields.String(), required=True)
    metrics = fields.Dict(required=True, metadata={
        "description": "Per metric: n, base_mean, head_mean, delta, ci_low, ci_high, p_bootstrap, p_permutation, "
                       "significant, verdict, wins, losses, ties, per_case_delta, only_in_base, only_in_head, unscored"})
    only_in_base_metrics = fields.List(fields.String(), required=True)
    only_in_head_metrics = fields.List(fields.String(), required=True)


class ReportArgs(Schema):
    format = fields.String(load_default="html", validate=validate.OneOf(("html", "json", "csv")))
    against = fields.String(metadata={"description": "A base run to include a comparison with (html, json)"})


EvaluationListArgs = list_args("name", "updated_at", extra={
    "type": fields.String(validate=validate.OneOf(EVALUATION_TYPES))}, name="EvaluationListArgs")
RunListArgs = list_args("finished_at", extra={
    "status": fields.String(validate=validate.OneOf(RUN_STATUSES))}, name="EvaluationRunListArgs")
CaseListArgs = list_args(name="TestCaseListArgs")
