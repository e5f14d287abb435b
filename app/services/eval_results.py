"""Reading evaluation runs back: per-case results, run-vs-run comparison, and exported reports."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.models import EvaluationCase, EvaluationResult, EvaluationRun
from app.services.eval_runs import NOT_APPLICABLE, get_run
from app.services.evaluations import get_evaluation, last_run
from app.services.reviews import grades_for_run, human_scores
from evaluations import report_html, reports
from evaluations.compare import compare_runs

FINISHED = ("completed", "cancelled", "failed")
HUMAN = "human"


def run_for(evaluation_id: str, run_id: str | None) -> EvaluationRun:
    """The named run of an evaluation, or its latest one."""
    get_evaluation(evaluation_id)
    if run_id:
        return get_run(run_id, evaluation_id)
    run = last_run(evaluation_id)
    if run is None:
        raise NotFound("This evaluation has not been run yet.", code="no_runs", details={"evaluation_id": evaluation_id})
    return run


def result_payload(result: EvaluationResult, case: EvaluationCase | None, human: dict | None = None) -> dict:
    return {
        "id": result.id, "case_id": result.case_id, "ordinal": result.ordinal,
        "input": case.input if case else None,
        "expected_output": (case.expected_output or {}).get("value") if case else None,
        "expected_sources": case.expected_sources if case else [],
        "metadata": case.case_metadata if case else {},
        "status": result.status, "error": result.error, "scores": result.scores,
        "metric_errors": result.metric_errors, "not_applicable": (result.details or {}).get(NOT_APPLICABLE, {}),
        "details": result.details, "warnings": result.warnings,
        "answer": result.output.get("answer"), "output": result.output,
        "retrieved": result.output.get("retrieved", []), "latency_ms": result.latency_ms,
        "tokens": {"input": result.prompt_tokens, "output": result.completion_tokens},
        "cost": result.cost, "attempts": result.attempts, "human_review": human,
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
    grades = grades_for_run(run.id)
    return {"success": True, "data": {"run": run, "results": [result_payload(r, c, grades.get(r.case_id))
                                                              for r, c in rows]},
            "pagination": {"page": page, "limit": limit, "total": total}}


def all_results(run: EvaluationRun) -> list[dict]:
    rows = db.session.execute(_results_query(run).order_by(EvaluationResult.ordinal))
    grades = grades_for_run(run.id)
    return [result_payload(r, c, grades.get(r.case_id)) for r, c in rows]


def _scores_by_metric(run: EvaluationRun, keys: dict[str, str] | None = None) -> dict[str, dict[str, float | None]]:
    """Per metric, each case's score, keyed by case id (or by `keys[case_id]`; cases without one left out)."""
    rows = db.session.execute(select(EvaluationResult.case_id, EvaluationResult.scores)
                              .where(EvaluationResult.run_id == run.id)).all()
    if keys is not None:
        rows = [r for r in rows if r.case_id in keys]
    names = list(run.metrics) or sorted({m for r in rows for m in (r.scores or {})})
    key = (lambda case_id: keys[case_id]) if keys is not None else (lambda case_id: case_id)
    scores = {m: {key(r.case_id): (r.scores or {}).get(m) for r in rows} for m in names}
    human = human_scores(run.id)  # reviewers' verdicts (1 pass, 0 fail) compare like any metric
    if human:
        scores[HUMAN] = {key(r.case_id): human.get(r.case_id) for r in rows}
    return scores


def _case_key(case: EvaluationCase) -> str:
    """What makes two cases the same question with the same expectations (not their ids or metadata)."""
    return json.dumps([case.input, case.expected_output, case.expected_sources, case.expected_no_answer,
                       case.filters], sort_keys=True, default=str)


def _cases_by_key(evaluation_id: str) -> dict[str, str]:
    """Content key -> case id, in case order; a case repeated within a suite is told apart by its occurrence."""
    cases = db.session.execute(select(EvaluationCase).where(EvaluationCase.evaluation_id == evaluation_id)
                               .order_by(EvaluationCase.ordinal, EvaluationCase.id)).scalars()
    keyed: dict[str, str] = {}
    for case in cases:
        key, n = _case_key(case), 1
        while f"{key}#{n}" in keyed:
            n += 1
        keyed[f"{key}#{n}"] = case.id
    return keyed


def _match_cases(base: EvaluationRun, head: EvaluationRun) -> tuple[dict[str, str], dict[str, str], dict]:
    """Runs of two evaluations are compared case by case where their inputs and expectations are the same:
    the keys to score each run's cases under (the base case's id), and what was matched."""
    base_cases, head_cases = _cases_by_key(base.evaluation_id), _cases_by_key(head.evaluation_id)
    pairs = [(base_cases[k], head_cases[k]) for k in base_cases if k in head_cases]
    if not pairs:
        raise ValidationFailed(
            "These runs belong to evaluations with no case in common (same input and expectations): "
            "there is nothing to compare.", code="no_matching_cases",
            details={"fields": {"head": [f"{head.id}'s evaluation shares no case with {base.id}'s"]}})
    matched_head = {h for _, h in pairs}
    matched_base = {b for b, _ in pairs}
    matching = {"by": "case content (input, expected_output, expected_sources, expected_no_answer, filters)",
                "matched": len(pairs), "pairs": [{"base_case_id": b, "head_case_id": h} for b, h in pairs],
                "unmatched_base_cases": [c for c in base_cases.values() if c not in matched_base],
                "unmatched_head_cases": [c for c in head_cases.values() if c not in matched_head]}
    return {b: b for b, _ in pairs}, {h: b for b, h in pairs}, matching


def compare(base_id: str, head_id: str, alpha: float = 0.05) -> dict:
    """Head vs base, metric by metric, over the cases both runs scored. Runs of one evaluation pair up by
    case; runs of two evaluations (e.g. one suite against two tool configurations) by case content."""
    base, head = get_run(base_id), get_run(head_id)
    for run in (base, head):
        if run.status not in FINISHED:
            raise ValidationFailed(f"Run {run.id} is {run.status}; compare runs that have ended.",
                                   code="run_not_finished", details={"run_id": run.id})
    if base.evaluation_id == head.evaluation_id:
        base_keys = head_keys = None
        matching = {"by": "case id", "matched": None}
    else:
        base_keys, head_keys, matching = _match_cases(base, head)
    comparison = compare_runs(_scores_by_metric(base, base_keys), _scores_by_metric(head, head_keys)).to_dict()
    for metric in comparison["metrics"].values():
        significant = (metric["p_bootstrap"] is not None and metric["p_permutation"] is not None
                       and max(metric["p_bootstrap"], metric["p_permutation"]) < alpha)
        metric["significant"] = significant
        metric["verdict"] = ("improved" if significant and metric["delta"] > 0 else
                             "regressed" if significant and metric["delta"] < 0 else "no significant change")
    regressed = sorted(n for n, m in comparison["metrics"].items() if m["verdict"] == "regressed")
    improved = sorted(n for n, m in comparison["metrics"].items() if m["verdict"] == "improved")
    return {"base_run_id": base.id, "head_run_id": head.id, "evaluation_id": base.evaluation_id,
            "head_evaluation_id": head.evaluation_id, "case_matching": matching,
            "alpha": alpha, "regressed": regressed, "improved": improved, **comparison}


def report(evaluation_id: str, run_id: str, fmt: str, against: str | None, run_dict: dict) -> tuple[str, str]:
    """(body, mimetype) of a run's report; `run_dict` is the run as the API serialises it."""
    run = get_run(run_id, evaluation_id)
    evaluation = get_evaluation(evaluation_id)
    run_dict = {**run_dict, "evaluation": {"id": evaluation.id, "name": evaluation.name, "type": evaluation.type,
                                           "target_id": evaluation.target_id}}
    results = all_results(run)
    human = run_dict.get("human_review")
    if human and human["human"]["covered"]:
        # In the report the reviewers' pass rate is one more metric: charted, tabled and a CSV column.
        run_dict["metrics"] = {**run_dict.get("metrics", {}), HUMAN: human["human"]}
        for result in results:
            verdict = (result["human_review"] or {}).get("verdict")
            result["scores"] = {**result["scores"], HUMAN: None if verdict is None else float(verdict == "pass")}
    comparison = compare(against, run.id) if against else None
    if fmt == "csv":
        return reports.to_csv(run_dict, results), "text/csv"
    if fmt == "json":
        return reports.to_json(run_dict, results, comparison), "application/json"
    return report_html.to_html(run_dict, results, comparison), "text/html"
