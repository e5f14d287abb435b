"""Evaluations: suites of test cases run against a RAG tool, retrieval tool or prompt template."""
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.api.evaluations import schemas as s
from app.auth import requires
from app.errors import ValidationFailed
from app.services import eval_results, eval_runs, evaluations
from evaluations.testsets import detect_format

blp = Blueprint("evaluations", __name__, url_prefix="/api/evaluations", description="Evaluations")


def _evaluation(evaluation):
    """The evaluation as the API shows it, with its case count and latest run."""
    run = evaluations.last_run(evaluation.id)
    return {
        **{f: getattr(evaluation, f) for f in ("id", "name", "description", "type", "target_id", "metrics",
                                               "thresholds", "settings", "created_at", "updated_at")},
        "test_case_count": evaluations.case_count(evaluation.id),
        "last_run": None if run is None else {
            "id": run.id, "status": run.status, "passed": run.passed,
            "finished_at": s.EvaluationRunSchema().dump(run)["finished_at"]},
    }


@blp.route("")
class Evaluations(MethodView):
    @requires("viewer")
    @blp.arguments(s.EvaluationListArgs, location="query")
    @blp.response(200, list_envelope(s.EvaluationSchema))
    def get(self, args):
        """List evaluations"""
        page = evaluations.list_evaluations(args)
        return {**page, "data": [_evaluation(e) for e in page["data"]]}

    @requires("operator")
    @blp.arguments(s.EvaluationWriteSchema)
    @blp.response(201, envelope(s.EvaluationSchema))
    def post(self, body):
        """Create an evaluation (optionally with its test cases)"""
        return ok(_evaluation(evaluations.create_evaluation(body)))


@blp.route("/compare")
class Compare(MethodView):
    @requires("viewer")
    @blp.arguments(s.CompareArgs, location="query")
    @blp.response(200, envelope(s.ComparisonSchema))
    def get(self, args):
        """Compare two runs (of one evaluation, or of two with the same cases): deltas, paired significance, wins and losses"""
        return ok(eval_results.compare(args["base"], args["head"], args["alpha"]))


@blp.route("/<evaluation_id>")
class EvaluationById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(s.EvaluationSchema))
    def get(self, evaluation_id):
        """Get an evaluation"""
        return ok(_evaluation(evaluations.get_evaluation(evaluation_id)))

    @requires("operator")
    @blp.arguments(s.EvaluationUpdateSchema)
    @blp.response(200, envelope(s.EvaluationSchema))
    def put(self, body, evaluation_id):
        """Update an evaluation; `test_cases`, when sent, replaces its cases"""
        return ok(_evaluation(evaluations.update_evaluation(evaluation_id, body)))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, evaluation_id):
        """Delete an evaluation with its cases, runs and results (409 while a run is in progress)"""
        evaluations.delete_evaluation(evaluation_id)
        return deleted("evaluation")


@blp.route("/<evaluation_id>/test-cases")
class TestCases(MethodView):
    @requires("viewer")
    @blp.arguments(s.CaseListArgs, location="query")
    @blp.response(200, list_envelope(s.TestCaseSchema))
    def get(self, args, evaluation_id):
        """List an evaluation's test cases in order"""
        page = evaluations.list_cases(evaluation_id, args)
        return {**page, "data": [evaluations.case_payload(c) for c in page["data"]]}

    @requires("operator")
    @blp.arguments(s.ImportArgs, location="query")
    @blp.arguments(s.ImportFileSchema, location="files")
    @blp.response(201, envelope(s.ImportResultSchema))
    def post(self, args, _files, evaluation_id):
        """Import test cases from JSON, JSONL or CSV: a multipart `file`, or the raw body
        (application/json, application/x-ndjson, text/csv). All or nothing; errors name their lines."""
        upload = request.files.get("file")
        data = upload.read() if upload else request.get_data()
        if not data:
            raise ValidationFailed("Send the test cases as a multipart `file` or as the request body.",
                                   code="empty_test_set", details={"fields": {"file": ["missing"]}})
        fmt = args.get("format") or detect_format(upload.filename if upload else None,
                                                  upload.mimetype if upload else request.mimetype, data)
        return ok(evaluations.import_cases(evaluation_id, data, fmt, replace=args["replace"]))


@blp.route("/<evaluation_id>/run")
class Run(MethodView):
    @requires("operator")
    @blp.arguments(s.RunRequestSchema, required=False)
    @blp.response(202, envelope(s.EvaluationRunSchema))
    def post(self, body, evaluation_id):
        """Start a run in the background (202): follow it at .../runs/{run_id}, cancel it there"""
        return ok(eval_runs.start_run(evaluation_id, thresholds=(body or {}).get("thresholds")))


@blp.route("/<evaluation_id>/runs")
class Runs(MethodView):
    @requires("viewer")
    @blp.arguments(s.RunListArgs, location="query")
    @blp.response(200, list_envelope(s.EvaluationRunSchema))
    def get(self, args, evaluation_id):
        """List an evaluation's runs"""
        return eval_runs.list_runs(evaluation_id, args)


@blp.route("/<evaluation_id>/runs/<run_id>")
class RunById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(s.EvaluationRunSchema))
    def get(self, evaluation_id, run_id):
        """A run: status, progress, aggregates with confidence intervals, thresholds, totals, snapshot"""
        return ok(eval_runs.get_run(run_id, evaluation_id))


@blp.route("/<evaluation_id>/runs/<run_id>/cancel")
class CancelRun(MethodView):
    @requires("operator")
    @blp.response(202, envelope(s.EvaluationRunSchema))
    def post(self, evaluation_id, run_id):
        """Cancel a run; cases already scored are kept and aggregated"""
        return ok(eval_runs.cancel_run(evaluation_id, run_id))


@blp.route("/<evaluation_id>/runs/<run_id>/report")
class Report(MethodView):
    @requires("viewer")
    @blp.arguments(s.ReportArgs, location="query")
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="text/html",
                  description="text/html, application/json or text/csv, as `format` asks")
    def get(self, args, evaluation_id, run_id):
        """Download a run's report: self-contained HTML (charts), JSON or CSV"""
        run_dict = s.EvaluationRunSchema().dump(eval_runs.get_run(run_id, evaluation_id))
        body, mimetype = eval_results.report(evaluation_id, run_id, args["format"], args.get("against"), run_dict)
        filename = f"{run_id}.{args['format']}"
        return Response(body, mimetype=mimetype,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@blp.route("/<evaluation_id>/results")
class Results(MethodView):
    @requires("viewer")
    @blp.arguments(s.ResultsArgs, location="query")
    @blp.response(200, s.ResultsEnvelope)
    def get(self, args, evaluation_id):
        """A run's aggregates and its per-case results, paginated (latest run unless `run_id`)"""
        return eval_results.list_results(evaluation_id, args)
