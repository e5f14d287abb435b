"""Evaluation suites: CRUD, their target, metrics, thresholds and run settings, and their test cases."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, func, select

from app.common.pagination import paginate
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.models import (
    Agent,
    Evaluation,
    EvaluationCase,
    EvaluationRun,
    LlmModel,
    PromptTemplate,
    RagTool,
    RetrievalTool,
    utcnow,
)
from evaluations import suite
from evaluations.testsets import TestSetError, parse_test_cases

TARGETS = {"rag_tool": RagTool, "retrieval_tool": RetrievalTool, "prompt_template": PromptTemplate, "agent": Agent}
SETTINGS_DEFAULTS: dict[str, Any] = {
    "concurrency": 4,  # cases in flight at once
    "timeout_s": 60,  # per case, per attempt
    "retries": 1,  # extra attempts after a failed or timed-out call
    "judge_model_id": None,  # chat model for judge metrics (default: the default chat model)
    "model_id": None,  # prompt_template targets: the chat model that answers (default: the default)
    "variable": None,  # prompt_template targets: the variable the case input fills
}
SETTING_RANGES = {"concurrency": (1, 16), "timeout_s": (1, 600), "retries": (0, 5)}
MAX_CASES = 100_000


def get_evaluation(evaluation_id: str) -> Evaluation:
    evaluation = db.session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise NotFound(f"Evaluation {evaluation_id} does not exist.", details={"id": evaluation_id})
    return evaluation


def find_evaluation(id_or_name: str) -> Evaluation:
    """By id, else by unique name (the CLI takes either)."""
    found = db.session.get(Evaluation, id_or_name) or db.session.execute(
        select(Evaluation).where(Evaluation.name == id_or_name)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"No evaluation has the id or name '{id_or_name}'.", details={"id": id_or_name})
    return found


def list_evaluations(args: dict) -> dict:
    query = select(Evaluation)
    if args.get("type"):
        query = query.where(Evaluation.type == args["type"])
    return paginate(query, Evaluation, args)


def case_count(evaluation_id: str) -> int:
    return db.session.execute(
        select(func.count()).select_from(EvaluationCase).where(EvaluationCase.evaluation_id == evaluation_id)
    ).scalar_one()


def last_run(evaluation_id: str) -> EvaluationRun | None:
    return db.session.execute(
        select(EvaluationRun).where(EvaluationRun.evaluation_id == evaluation_id)
        .order_by(EvaluationRun.created_at.desc(), EvaluationRun.id.desc()).limit(1)
    ).scalar_one_or_none()


def _invalid(field: str, problems: list[str], message: str | None = None) -> ValidationFailed:
    return ValidationFailed(message or f"{field}: {'; '.join(problems)}", details={"fields": {field: problems}})


def _check_name_free(name: str, exclude_id: str | None = None) -> None:
    query = select(Evaluation.id).where(Evaluation.name == name)
    if exclude_id:
        query = query.where(Evaluation.id != exclude_id)
    if db.session.execute(query).first():
        raise Conflict(f"An evaluation named '{name}' already exists.", code="duplicate_name", details={"name": name})


def target_of(evaluation: Evaluation):
    """The tool or template an evaluation runs against; 422 if it no longer exists."""
    target = db.session.get(TARGETS[evaluation.type], evaluation.target_id)
    if target is None:
        raise _invalid("target_id", [f"no {evaluation.type} has the id {evaluation.target_id}"])
    return target


def _chat_model(model_id: str | None, field: str) -> None:
    if model_id is None:
        return
    model = db.session.get(LlmModel, model_id)
    if model is None or model.kind != "chat":
        raise _invalid(field, [f"{model_id!r} is not a chat model"])


def _settings(current: dict, changes: dict | None) -> dict:
    merged = {**SETTINGS_DEFAULTS, **(current or {})}
    for key, value in (changes or {}).items():
        if key not in SETTINGS_DEFAULTS:
            raise _invalid("settings", [f"unknown setting '{key}' (known: {', '.join(SETTINGS_DEFAULTS)})"])
        merged[key] = value
    for key, (low, high) in SETTING_RANGES.items():
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise _invalid("settings", [f"{key} must be a number from {low} to {high}"])
    _chat_model(merged["judge_model_id"], "settings.judge_model_id")
    _chat_model(merged["model_id"], "settings.model_id")
    if merged["variable"] is not None and not isinstance(merged["variable"], str):
        raise _invalid("settings", ["variable must be a template variable name"])
    return merged


def _metrics(raw: Any, type_: str) -> list[suite.MetricSpec]:
    try:
        return suite.parse_metrics(raw if raw is not None else suite.DEFAULT_METRICS[type_], type_)
    except suite.SuiteError as exc:
        raise _invalid("metrics", exc.problems, f"Invalid metrics: {exc}") from exc


def specs_of(evaluation: Evaluation) -> list[suite.MetricSpec]:
    return suite.parse_metrics(evaluation.metrics, evaluation.type)


def _apply(evaluation: Evaluation, body: dict) -> None:
    if "name" in body:
        _check_name_free(body["name"], exclude_id=evaluation.id)
        evaluation.name = body["name"]
    if "description" in body:
        evaluation.description = body["description"]
    type_changed = "type" in body and body["type"] != evaluation.type
    if "type" in body:
        evaluation.type = body["type"]
    if "target_id" in body:
        evaluation.target_id = body["target_id"]
    target_of(evaluation)
    if "metrics" in body or type_changed or not evaluation.metrics:
        specs = _metrics(body.get("metrics", evaluation.metrics or None), evaluation.type)
        evaluation.metrics = [s.to_dict() for s in specs]
    specs = specs_of(evaluation)
    if "thresholds" in body or "metrics" in body:
        try:
            evaluation.thresholds = suite.check_thresholds(body.get("thresholds", evaluation.thresholds or {}), specs)
        except suite.SuiteError as exc:
            raise _invalid("thresholds", exc.problems, f"Invalid thresholds: {exc}") from exc
    if "settings" in body or not evaluation.settings:
        evaluation.settings = _settings(evaluation.settings, body.get("settings"))
    if any(s.family == "judge" for s in specs):
        from app.services.eval_targets import judge_model  # noqa: PLC0415 (avoids an import cycle)

        judge_model(evaluation)  # 422 now rather than an error on every case later


def create_evaluation(body: dict) -> Evaluation:
    _check_name_free(body["name"])
    evaluation = Evaluation(name=body["name"], type=body["type"], target_id=body["target_id"])
    _apply(evaluation, body)
    db.session.add(evaluation)
    db.session.flush()
    if body.get("test_cases") is not None:
        _store_cases(evaluation, _parse_body_cases(body["test_cases"]), replace=True)
    db.session.commit()
    return evaluation


def update_evaluation(evaluation_id: str, body: dict) -> Evaluation:
    evaluation = get_evaluation(evaluation_id)
    _apply(evaluation, body)
    if body.get("test_cases") is not None:
        _store_cases(evaluation, _parse_body_cases(body["test_cases"]), replace=True)
    db.session.commit()
    return evaluation


def delete_evaluation(evaluation_id: str) -> None:
    evaluation = get_evaluation(evaluation_id)
    active = db.session.execute(select(EvaluationRun.id).where(
        EvaluationRun.evaluation_id == evaluation.id, EvaluationRun.status.in_(("queued", "running")))).first()
    if active:
        raise Conflict(f"{evaluation.name} has a run in progress ({active[0]}); cancel it first.",
                       code="run_in_progress", details={"run_id": active[0]})
    db.session.delete(evaluation)
    db.session.commit()


# -- test cases ----------------------------------------------------------------------------------------


def _parse(data: bytes | str, fmt: str) -> list[dict]:
    try:
        return parse_test_cases(data, fmt)
    except TestSetError as exc:
        raise ValidationFailed(f"The test cases are invalid: {exc}", code="invalid_test_cases",
                               details={"errors": exc.errors}) from exc


def _parse_body_cases(cases: list) -> list[dict]:
    return _parse(json.dumps(cases), "json")


def _store_cases(evaluation: Evaluation, cases: list[dict], *, replace: bool) -> int:
    if replace:
        db.session.execute(delete(EvaluationCase).where(EvaluationCase.evaluation_id == evaluation.id))
        start = 0
    else:
        start = db.session.execute(select(func.coalesce(func.max(EvaluationCase.ordinal) + 1, 0)).where(
            EvaluationCase.evaluation_id == evaluation.id)).scalar_one()
    if start + len(cases) > MAX_CASES:
        raise _invalid("test_cases", [f"an evaluation holds at most {MAX_CASES} test cases"])
    rows = [
        EvaluationCase(
            evaluation_id=evaluation.id, ordinal=start + i, input=case["input"],
            expected_output=None if case.get("expected_output") is None else {"value": case["expected_output"]},
            expected_sources=case.get("expected_sources") or [],
            expected_no_answer=bool(case.get("expected_no_answer")),
            case_metadata=case.get("metadata") or {}, filters=case.get("filters"),
        )
        for i, case in enumerate(cases)
    ]
    if any(case.get("filters") for case in cases):
        from app.services.retrieval import check_filters

        for case in cases:
            check_filters(case.get("filters"))
    db.session.add_all(rows)
    return len(rows)


def import_cases(evaluation_id: str, data: bytes, fmt: str, *, replace: bool) -> dict:
    """Add (or replace) test cases from a JSON, JSONL or CSV document; all-or-nothing."""
    evaluation = get_evaluation(evaluation_id)
    cases = _parse(data, fmt)
    added = _store_cases(evaluation, cases, replace=replace)
    evaluation.updated_at = utcnow()
    db.session.commit()
    return {"imported": added, "total": case_count(evaluation.id), "format": fmt, "replaced": replace}


def list_cases(evaluation_id: str, args: dict) -> dict:
    get_evaluation(evaluation_id)
    query = select(EvaluationCase).where(EvaluationCase.evaluation_id == evaluation_id)
    return paginate(query, EvaluationCase, {**args, "sort": "ordinal", "order": "asc"})


def case_payload(case: EvaluationCase) -> dict:
    return {
        "id": case.id, "ordinal": case.ordinal, "input": case.input,
        "expected_output": (case.expected_output or {}).get("value"),
        "expected_sources": case.expected_sources, "expected_no_answer": case.expected_no_answer,
        "metadata": case.case_metadata, "filters": case.filters,
    }
