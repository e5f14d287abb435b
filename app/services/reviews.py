"""Human review of evaluation runs: put cases of a run in front of reviewers, take their grades, and
measure the humans against the run's LLM judges.

A review item is one case of one run (unique per run and case, so asking twice never duplicates it). Its
grade is stored on the item, not in any report, so reports re-rendered later still show it; every grade
given is also appended to ReviewGrade (history). Claiming is one conditional UPDATE: of two reviewers
claiming at once exactly one wins, the other gets 409.
"""
from __future__ import annotations

import random
from datetime import UTC
from typing import Any

from sqlalchemy import and_, func, not_, select, update

from app.common.pagination import paginate
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.models import (
    Evaluation,
    EvaluationCase,
    EvaluationResult,
    EvaluationRun,
    ReviewGrade,
    ReviewItem,
    utcnow,
)
from app.services.eval_runs import get_run
from app.services.evaluations import get_evaluation
from evaluations import agreement
from evaluations.suite import JUDGE

FINISHED = ("completed", "cancelled", "failed")
# A case "fails" a metric without a threshold when it scores under this (the judges' 3 of 5).
DEFAULT_CASE_PASS = 0.5


# -- creating review items -----------------------------------------------------------------------------


def create_reviews(evaluation_id: str, run_id: str, body: dict) -> dict[str, Any]:
    """Review items for the selected cases of a finished run; cases already under review are kept as they are."""
    get_evaluation(evaluation_id)
    run = get_run(run_id, evaluation_id)
    if run.status not in FINISHED:
        raise Conflict(f"Run {run.id} is {run.status}; review runs that have ended.", code="run_not_finished",
                       details={"run_id": run.id})
    results = db.session.execute(select(EvaluationResult).where(EvaluationResult.run_id == run.id)
                                 .order_by(EvaluationResult.ordinal, EvaluationResult.case_id)).scalars().all()
    chosen = _select(results, run, body)
    existing = set(db.session.execute(select(ReviewItem.case_id).where(ReviewItem.run_id == run.id)).scalars())
    created = [ReviewItem(evaluation_id=evaluation_id, run_id=run.id, case_id=r.case_id, ordinal=r.ordinal)
               for r in chosen if r.case_id not in existing]
    db.session.add_all(created)
    db.session.commit()
    items = db.session.execute(select(ReviewItem).where(
        ReviewItem.run_id == run.id, ReviewItem.case_id.in_([r.case_id for r in chosen]))
        .order_by(ReviewItem.ordinal)).scalars().all()
    return {"run_id": run.id, "select": body["select"], "selected": len(chosen), "created": len(created),
            "already_under_review": len(chosen) - len(created), "items": [item_payload(i) for i in items]}


def _select(results: list[EvaluationResult], run: EvaluationRun, body: dict) -> list[EvaluationResult]:
    how = body["select"]
    if how == "all":
        return results
    if how == "failing":
        return [r for r in results if is_failing(r, run.thresholds or {})]
    n = body.get("n")
    if n is None:
        raise ValidationFailed("`select: sample` needs `n`, the number of cases to draw.",
                               details={"fields": {"n": ["required when select is sample"]}})
    # Sorted by ordinal before drawing, so the same seed always draws the same cases.
    return sorted(random.Random(body.get("seed", 0)).sample(results, min(n, len(results))),
                  key=lambda r: r.ordinal)


def is_failing(result: EvaluationResult, thresholds: dict) -> bool:
    """Not answered (error, timeout), or any metric scored under its threshold (DEFAULT_CASE_PASS without one)."""
    if result.status != "ok":
        return True
    for name, score in (result.scores or {}).items():
        limit = (thresholds.get(name) or {}).get("threshold", DEFAULT_CASE_PASS)
        if score is not None and score < limit:
            return True
    return False


# -- reading -------------------------------------------------------------------------------------------


def get_item(item_id: str) -> ReviewItem:
    item = db.session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"Review item {item_id} does not exist.", details={"id": item_id})
    return item


def item_payload(item: ReviewItem) -> dict[str, Any]:
    return {f: getattr(item, f) for f in (
        "id", "evaluation_id", "run_id", "case_id", "ordinal", "status", "claimed_by", "claimed_at",
        "completed_at", "verdict", "score", "comment", "graded_by", "graded_at", "created_at", "updated_at")}


def queue_items(args: dict, wanted: int) -> tuple[list[dict[str, Any]], int]:
    """Review items for the reviewers' queue (GET /api/review/tasks, kind `evaluation_review`): up to
    `wanted` matching the queue's filters, newest first, and how many match in all. They have no deadline,
    so they are never overdue."""
    if args.get("overdue"):
        return [], 0
    query = select(ReviewItem)
    if args.get("status"):
        query = query.where(ReviewItem.status.in_(args["status"]))
    total = db.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    items = db.session.execute(query.order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc())
                               .limit(wanted)).scalars().all()
    names = dict(db.session.execute(select(Evaluation.id, Evaluation.name).where(
        Evaluation.id.in_({i.evaluation_id for i in items}))).all()) if items else {}
    return [{"kind": "evaluation_review", "id": i.id, "title": f"Grade case {i.ordinal} of run {i.run_id}",
             "status": i.status, "deadline_at": None, "overdue": False, "flags": [],
             "requester": {"type": "evaluation", "id": i.evaluation_id, "name": names.get(i.evaluation_id)},
             "claimed_by": i.claimed_by, "created_at": i.created_at, "updated_at": i.updated_at}
            for i in items], total


def list_items(args: dict) -> dict:
    query = select(ReviewItem)
    for field in ("evaluation_id", "run_id", "status"):
        if args.get(field):
            query = query.where(getattr(ReviewItem, field) == args[field])
    page = paginate(query, ReviewItem, args)
    return {**page, "data": [item_payload(i) for i in page["data"]]}


def item_detail(item_id: str) -> dict[str, Any]:
    """What a reviewer needs: the case's input and expectations, the answer with its citations, the passages."""
    item = get_item(item_id)
    case = db.session.get(EvaluationCase, item.case_id)
    result = db.session.execute(select(EvaluationResult).where(
        EvaluationResult.run_id == item.run_id, EvaluationResult.case_id == item.case_id)).scalar_one_or_none()
    output = result.output if result is not None else {}
    grades = db.session.execute(select(ReviewGrade).where(ReviewGrade.item_id == item.id)
                                .order_by(ReviewGrade.created_at, ReviewGrade.id)).scalars()
    return {
        **item_payload(item),
        "input": case.input if case else None,
        "expected_output": (case.expected_output or {}).get("value") if case else None,
        "expected_sources": case.expected_sources if case else [],
        "answer": output.get("answer"), "citations": output.get("citations", []),
        "retrieved": output.get("retrieved", []),
        "result": None if result is None else {
            "status": result.status, "error": result.error, "scores": result.scores,
            "metric_errors": result.metric_errors},
        "grades": [{"verdict": g.verdict, "score": g.score, "comment": g.comment, "graded_by": g.graded_by,
                    "created_at": g.created_at} for g in grades],
    }


# -- claiming and grading ------------------------------------------------------------------------------


def claim(item_id: str, who: str) -> ReviewItem:
    """Take a pending item (atomic); claiming your own claim again is a no-op; anyone else's is 409."""
    won = db.session.execute(update(ReviewItem).where(ReviewItem.id == item_id, ReviewItem.status == "PENDING")
                             .values(status="IN_PROGRESS", claimed_by=who, claimed_at=utcnow(),
                                     updated_at=utcnow())).rowcount
    db.session.commit()
    item = get_item(item_id)
    db.session.refresh(item)
    if not won and not (item.status == "IN_PROGRESS" and item.claimed_by == who):
        if item.status == "COMPLETED":
            raise Conflict(f"Review item {item_id} is already graded; grade it again to change the grade.",
                           code="review_completed", details={"id": item_id})
        raise Conflict(f"Review item {item_id} is claimed by another reviewer.", code="review_claimed",
                       details={"id": item_id, "claimed_by": item.claimed_by})
    return item


def release(item_id: str, who: str) -> ReviewItem:
    """Give a claimed item back to the queue (only its claimer can)."""
    released = db.session.execute(update(ReviewItem).where(
        ReviewItem.id == item_id, ReviewItem.status == "IN_PROGRESS", ReviewItem.claimed_by == who)
        .values(status="PENDING", claimed_by=None, claimed_at=None, updated_at=utcnow())).rowcount
    db.session.commit()
    item = get_item(item_id)
    db.session.refresh(item)
    if not released:
        raise Conflict(f"Review item {item_id} is not claimed by you.", code="review_not_claimed",
                       details={"id": item_id, "status": item.status})
    return item


def grade(item_id: str, who: str, body: dict) -> ReviewItem:
    """Set the item's grade (replacing any earlier one, which stays in the history) and complete it.
    Refused (409) while another reviewer holds the item."""
    if body.get("verdict") is None and body.get("score") is None:
        raise ValidationFailed("A grade needs a `verdict` (pass or fail), a `score` (1-5), or both.",
                               details={"fields": {"verdict": ["verdict or score required"]}})
    get_item(item_id)
    now = utcnow()
    held_by_other = and_(ReviewItem.status == "IN_PROGRESS", ReviewItem.claimed_by != who)
    done = db.session.execute(update(ReviewItem).where(ReviewItem.id == item_id, not_(held_by_other)).values(
        status="COMPLETED", verdict=body.get("verdict"), score=body.get("score"), comment=body.get("comment"),
        graded_by=who, graded_at=now, completed_at=now, claimed_by=who, updated_at=now)).rowcount
    if not done:
        db.session.rollback()
        item = get_item(item_id)
        raise Conflict(f"Review item {item_id} is claimed by another reviewer.", code="review_claimed",
                       details={"id": item_id, "claimed_by": item.claimed_by})
    db.session.add(ReviewGrade(item_id=item_id, verdict=body.get("verdict"), score=body.get("score"),
                               comment=body.get("comment"), graded_by=who, created_at=now))
    db.session.commit()
    item = get_item(item_id)
    db.session.refresh(item)
    return item


# -- what the grades say about the run -----------------------------------------------------------------


def grades_for_run(run_id: str) -> dict[str, dict[str, Any]]:
    """case id -> its human grade, for the graded cases of a run."""
    items = db.session.execute(select(ReviewItem).where(ReviewItem.run_id == run_id,
                                                        ReviewItem.status == "COMPLETED")).scalars()
    return {i.case_id: {"verdict": i.verdict, "score": i.score, "comment": i.comment, "graded_by": i.graded_by,
                        "graded_at": _iso(i.graded_at), "review_item_id": i.id} for i in items}


def _iso(value) -> str | None:
    """ISO 8601 UTC with Z, as every timestamp of the API (these land in free-form dicts, not schema fields)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def human_scores(run_id: str) -> dict[str, float]:
    """case id -> 1.0 (pass) / 0.0 (fail) for every case a human gave a verdict: the `human` metric per case."""
    return {case: 1.0 if g["verdict"] == "pass" else 0.0
            for case, g in grades_for_run(run_id).items() if g["verdict"] is not None}


def run_summary(run: EvaluationRun) -> dict[str, Any] | None:
    """The run's human metric and each LLM judge's agreement with the humans; None when nothing is under review."""
    statuses = db.session.execute(select(ReviewItem.status).where(ReviewItem.run_id == run.id)).scalars().all()
    if not statuses:
        return None
    grades = grades_for_run(run.id)
    verdicts = {c: g["verdict"] == "pass" for c, g in grades.items() if g["verdict"] is not None}
    scores = {c: g["score"] for c, g in grades.items() if g["score"] is not None}
    total = run.cases_total or len(statuses)
    human = agreement.pass_rate([verdicts[c] for c in sorted(verdicts)], total)
    human["graded"] = len(grades)
    human["score_mean"] = sum(scores.values()) / len(scores) if scores else None
    human["scored"] = len(scores)
    judges = [name for name in (run.metrics or {}) if name in JUDGE]
    per_case = _judge_scores(run.id, judges)
    return {
        "items": {s: statuses.count(s) for s in ("PENDING", "IN_PROGRESS", "COMPLETED")},
        "human": human,
        "agreement": {name: agreement.judge_agreement(per_case[name], verdicts, scores) for name in judges},
    }


def _judge_scores(run_id: str, names: list[str]) -> dict[str, dict[str, float | None]]:
    rows = db.session.execute(select(EvaluationResult.case_id, EvaluationResult.scores)
                              .where(EvaluationResult.run_id == run_id)).all()
    return {name: {r.case_id: (r.scores or {}).get(name) for r in rows} for name in names}
