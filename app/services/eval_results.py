"""Reading evaluation runs back: per-case results, run-vs-run comparison, and exported reports."""
from __future__ import annotations

from sqlalchemy import func, select

from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.models import EvaluationCase, EvaluationResult, EvaluationRun
from app.services.eval_runs import get_run
from app.services.evaluations import get_evaluation, last_run
from evaluations import report_html, reports
from evaluations.compare import compare_runs

FINISHED = ("completed", "cancelled", "failed")


def run_for(evaluation_id: str, run_id: str | None) -> EvaluationRun:
    """The named run of an evaluation, or its latest one."""
    get_evaluation(evaluation_id)
    if run_id:
        return get_run(run_id, evaluation_id)
    run = last_run(evaluation_id)
    if run is None:
        raise NotFound("This evaluation has not been run yet.", code="no_runs", details={"evaluation_id": evaluation_id})
    return run


def result_payload(result: EvaluationResult, case: EvaluationCase | None) -> dict:
    return {
        "id": result.id, "case_id": result.case_id, "ordinal": result.ordinal,
        "input": case.input if case else None,
        "expected_output": (case.expected_output or {}).get("value") if case else None,
        "status": result.status, "error": result.error, "scores": result.scores,
        "metric_errors": result.metric_errors, "details": result.details, "warnings": result.warnings,
        "answer": result.output.get("answer"), "output": result.output,
        "retrieved": result.output.get("retrieved", []), "latency_ms": result.latency_ms,
        "tokens": {"input": result.prompt_tokens, "output": result.completion_tokens},
        "cost": result.cost, "attempts": result.attempts,
    }


def _results_query(run: EvaluationRun, status: str | None = None):
    query = (select(EvaluationResult, EvaluationCase)
             .outerjoin(EvaluationCase, EvaluationCase.id == EvaluationResult.case_id)
             .where(EvaluationResult.run_id == run.id))
    if status:
        query = query.where(EvaluationResult.status == status)
    return query


def list_results(evaluation_id: str, args: dict) -> dict:
    run = run_for(evaluation_id, args.get("run_id"))
    query = _results_query(run, args.get("status"))
    total = db.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    page, limit = args["page"], args["limit"]
    rows = db.session.execute(query.order_by(EvaluationResult.ordinal).offset((page - 1) * limit).limit(limit))
    return {"success": True, "data": {"run": run, "results": [result_payload(r, c) for r, c in rows]},
            "pagination": {"page": page, "limit": limit, "total": total}}


def all_results(run: EvaluationRun) -> list[dict]:
    rows = db.session.execute(_results_query(run).order_by(EvaluationResult.ordinal))
    return [result_payload(r, c) for r, c in rows]


def _scores_by_metric(run: EvaluationRun) -> dict[str, dict[str, float | None]]:
    rows = db.session.execute(select(EvaluationResult.case_id, EvaluationResult.scores)
                              .where(EvaluationResult.run_id == run.id)).all()
    names = list(run.metrics) or sorted({m for r in rows for m in (r.scores or {})})
    return {m: {r.case_id: (r.scores or {}).get(m) for r in rows} for m in names}


def compare(base_id: str, head_id: str, alpha: float = 0.05) -> dict:
    """Head vs base, metric by metric, over the cases both runs scored; both runs of one evaluation."""
    base, head = get_run(base_id), get_run(head_id)
    if base.evaluation_id != head.evaluation_id:
        raise ValidationFailed("Compare two runs of the same evaluation: their cases must be the same.",
                               details={"fields": {"head": [f"{head.id} belongs to another evaluation"]}})
    for run in (base, head):
        if run.status not in FINISHED:
            raise ValidationFailed(f"Run {run.id} is {run.status}; compare runs that have ended.",
                                   code="run_not_finished", details={"run_id": run.id})
    comparison = compare_runs(_scores_by_metric(base), _scores_by_metric(head)).to_dict()
    for metric in comparison["metrics"].values():
        significant = (metric["p_bootstrap"] is not None and metric["p_permutation"] is not None
                       and max(metric["p_bootstrap"], metric["p_permutation"]) < alpha)
        metric["significant"] = significant
        metric["verdict"] = ("improved" if significant and metric["delta"] > 0 else
                             "regressed" if significant and metric["delta"] < 0 else "no significant change")
    regressed = sorted(n for n, m in comparison["metrics"].items() if m["verdict"] == "regressed")
    improved = sorted(n for n, m in comparison["metrics"].items() if m["verdict"] == "improved")
    return {"base_run_id": base.id, "head_run_id": head.id, "evaluation_id": base.evaluation_id,
            "alpha": alpha, "regressed": regressed, "improved": improved, **comparison}


def report(evaluation_id: str, run_id: str, fmt: str, against: str | None, run_dict: dict) -> tuple[str, str]:
    """(body, mimetype) of a run's report; `run_dict` is the run as the API serialises it."""
    run = get_run(run_id, evaluation_id)
    evaluation = get_evaluation(evaluation_id)
    run_dict = {**run_dict, "evaluation": {"id": evaluation.id, "name": evaluation.name, "type": evaluation.type,
                                           "target_id": evaluation.target_id}}
    results = all_results(run)
    comparison = compare(against, run.id) if against else None
    if fmt == "csv":
        return reports.to_csv(run_dict, results), "text/csv"
    if fmt == "json":
        return reports.to_json(run_dict, results, comparison), "application/json"
    return report_html.to_html(run_dict, results, comparison), "text/html"
