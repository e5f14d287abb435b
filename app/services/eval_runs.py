"""Evaluation runs: start (202), cancel, and the background work that scores every case.

A run calls its target for each case with bounded concurrency, a per-case timeout and retries, scores
the case at once and stores it, so a crash loses at most the cases in flight: on restart the run
resumes with the cases it has no result for. A case that times out or fails is stored as such (never
dropped) and counts against the metrics' coverage. Aggregates, thresholds and pass/fail are computed
from the stored per-case scores when the run ends.
"""
from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import delete, select, update

from app.common.pagination import paginate
from app.common.queue import enqueue
from app.errors import Conflict, MagnetError, NotFound, ServiceUnavailable, ValidationFailed
from app.extensions import db
from app.models import Evaluation, EvaluationCase, EvaluationResult, EvaluationRun, utcnow
from app.runtime.timeouts import Overran, run_with_timeout
from app.services import eval_targets
from app.services.evaluations import case_count, case_payload, get_evaluation, specs_of
from app.services.leases import Lease, abandoned_lease
from app.services.liveness import RunHeartbeat, stale_before
from app.services.sources_config import hide_server_paths
from evaluations import suite

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")
# Kept in a result's details: {metric: why the case gives it nothing to score} (not a metric error).
NOT_APPLICABLE = "not_applicable"
PROGRESS_EVERY_SECONDS = 1.0
INTERRUPTED = ("Interrupted (worker lost): the process running this evaluation stopped before it ended. "
               "Run it again.")
# Errors a retry cannot fix: the request itself is wrong (bad filter, missing variable).
NOT_RETRIED = (ValidationFailed, NotFound)


class CaseTimeout(Exception):
    pass


# -- API use cases -------------------------------------------------------------------------------------


def start_run(evaluation_id: str, *, trigger: str = "api", thresholds: dict | None = None) -> EvaluationRun:
    """Queue a run of every test case; 422 with no cases, 409 while the target's index builds."""
    evaluation = get_evaluation(evaluation_id)
    total = case_count(evaluation.id)
    if total == 0:
        raise ValidationFailed(f"{evaluation.name} has no test cases; import some first.", code="empty_test_set",
                               details={"fields": {"test_cases": ["empty"]}})
    eval_targets.check_ready(evaluation)
    effective = {**evaluation.thresholds, **(thresholds or {})}
    if thresholds:
        effective = suite.check_thresholds(effective, specs_of(evaluation))
    shot = eval_targets.snapshot(evaluation)
    shot["thresholds"] = effective
    run = EvaluationRun(evaluation_id=evaluation.id, trigger=trigger, cases_total=total, target_snapshot=shot)
    db.session.add(run)
    db.session.commit()
    if trigger != "cli":  # the CLI runs it in its own process, with a progress bar
        run_id = run.id
        try:
            enqueue("run_evaluation", run_id)
        except ServiceUnavailable:  # no message, no run: nothing is left queued forever
            db.session.rollback()
            db.session.execute(delete(EvaluationRun).where(EvaluationRun.id == run_id,
                                                           EvaluationRun.status == "queued"))
            db.session.commit()
            raise
    return run


def get_run(run_id: str, evaluation_id: str | None = None) -> EvaluationRun:
    run = db.session.get(EvaluationRun, run_id)
    if run is None or (evaluation_id and run.evaluation_id != evaluation_id):
        where = f" of evaluation {evaluation_id}" if evaluation_id else ""
        raise NotFound(f"Evaluation run {run_id}{where} does not exist.", details={"id": run_id})
    return run


def list_runs(evaluation_id: str, args: dict) -> dict:
    get_evaluation(evaluation_id)
    query = select(EvaluationRun).where(EvaluationRun.evaluation_id == evaluation_id)
    if args.get("status"):
        query = query.where(EvaluationRun.status == args["status"])
    return paginate(query, EvaluationRun, args)


def cancel_run(evaluation_id: str, run_id: str) -> EvaluationRun:
    """A queued run stops at once; a running one within a second, keeping the cases already scored."""
    run = get_run(run_id, evaluation_id)
    if run.status not in ACTIVE:
        raise Conflict(f"Run {run_id} has already ended ({run.status}).", code="run_finished")
    run.cancel_requested = True
    if run.status == "queued":
        _finish(run, "cancelled", "Cancelled before it started.")
    db.session.commit()
    return run


# -- the background task -------------------------------------------------------------------------------


def run_evaluation(run_id: str, progress: Callable[[int, int], None] | None = None) -> None:
    """Claim and execute a run (Huey task, or the CLI inline); a duplicate delivery does nothing."""
    lease = Lease("eval", run_id)
    if not lease.acquire():
        return
    try:
        claimed = db.session.execute(
            update(EvaluationRun).where(EvaluationRun.id == run_id, EvaluationRun.status == "queued")
            .values(status="running", heartbeat_at=utcnow())
        ).rowcount
        db.session.commit()
        if claimed:
            run = db.session.get(EvaluationRun, run_id)
            run.started_at = run.started_at or utcnow()  # a resumed run keeps its first start
            db.session.commit()
            with RunHeartbeat(EvaluationRun, run_id) as heartbeat:
                _execute(run, progress, heartbeat.lost)
    finally:
        lease.release()


@dataclass
class _Plan:
    """What every case of a run shares, read once in the coordinating thread."""

    evaluation: Evaluation
    specs: list[suite.MetricSpec]
    depth: int
    known_sources: set[str]
    timeout_s: float
    retries: int
    embedder: object | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    # Set by the run's heartbeat when the reaper took the run from this worker (it resumes elsewhere).
    lost: threading.Event = field(default_factory=threading.Event)


def _execute(run: EvaluationRun, progress: Callable[[int, int], None] | None,
             lost: threading.Event | None = None) -> None:
    try:
        plan = _plan(run)
        plan.lost = lost or plan.lost
        done = set(db.session.execute(select(EvaluationResult.case_id).where(EvaluationResult.run_id == run.id)).scalars())
        cases = [case_payload(c) for c in db.session.execute(
            select(EvaluationCase).where(EvaluationCase.evaluation_id == run.evaluation_id)
            .order_by(EvaluationCase.ordinal)).scalars() if c.id not in done]
        run.cases_total = len(cases) + len(done)
        db.session.commit()
        cancelled = _score_all(run, plan, cases, progress)
    except MagnetError as exc:
        db.session.rollback()
        _finish(run, "failed", exc.message)
        db.session.commit()
        return
    except Exception as exc:  # the run must end visibly, whatever happened
        log.exception("evaluation run %s failed", run.id)
        db.session.rollback()
        _finish(run, "failed", hide_server_paths(f"Internal error: {type(exc).__name__}: {exc}")[:1000])
        db.session.commit()
        return
    if plan.lost.is_set():  # requeued by the reaper while this worker was away: whoever resumes it ends it
        db.session.commit()
        log.warning("evaluation run %s was reaped as lost while it ran; not finalizing it here", run.id)
        return
    finalize(run, cancelled)


def _plan(run: EvaluationRun) -> _Plan:
    evaluation = get_evaluation(run.evaluation_id)
    # Case threads read it; detached, so this thread's commits cannot expire it under them.
    db.session.expunge(evaluation)
    specs = specs_of(evaluation)
    expected = {s["id"] for c in db.session.execute(
        select(EvaluationCase.expected_sources).where(EvaluationCase.evaluation_id == evaluation.id)).scalars()
        for s in c}
    embedder = None
    if any(s.base == "semantic_similarity" for s in specs):
        from app.services import engine
        from app.services.llm_models import default_model

        model = default_model("embedding")
        embedder = eval_targets.MeteredEmbedder(engine.embedder_for(model), model.id, evaluation.id)
    depth = run.target_snapshot.get("retrieval_depth") or 0
    return _Plan(evaluation=evaluation, specs=specs, depth=depth,
                 known_sources=eval_targets.known_source_ids(evaluation, expected),
                 timeout_s=float(evaluation.settings.get("timeout_s", 60)),
                 retries=int(evaluation.settings.get("retries", 1)), embedder=embedder)


def _score_all(run: EvaluationRun, plan: _Plan, cases: list[dict], progress) -> bool:
    """Run the cases with bounded concurrency; results are written here, in one thread. True if cancelled."""
    app = current_app._get_current_object()
    concurrency = int(plan.evaluation.settings.get("concurrency", 4))
    pending: dict[Future, dict] = {}
    queue = iter(cases)
    last_check = time.monotonic()
    cancelled = False
    with ThreadPoolExecutor(concurrency, thread_name_prefix="magnet-eval") as pool:
        while True:
            while not cancelled and len(pending) < concurrency * 2:
                case = next(queue, None)
                if case is None:
                    break
                pending[pool.submit(_in_app, app, plan, case)] = case
            if not pending:
                break
            finished, _ = wait(pending, timeout=PROGRESS_EVERY_SECONDS, return_when=FIRST_COMPLETED)
            for future in finished:
                case, outcome = pending.pop(future), future.result()
                if outcome is not None:
                    _store(run, case, outcome)
            if time.monotonic() - last_check >= PROGRESS_EVERY_SECONDS or not pending:
                last_check = time.monotonic()
                cancelled = cancelled or _checkpoint(run) or plan.lost.is_set()
                if cancelled:
                    plan.cancel.set()  # cases in flight stop at their next attempt
                if progress:
                    progress(run.cases_done, run.cases_total)
    db.session.commit()
    if progress:
        progress(run.cases_done, run.cases_total)
    return cancelled


def _checkpoint(run: EvaluationRun) -> bool:
    run.heartbeat_at = utcnow()
    db.session.commit()
    return bool(db.session.execute(
        select(EvaluationRun.cancel_requested).where(EvaluationRun.id == run.id)).scalar_one())


@dataclass
class _CaseResult:
    status: str
    error: str | None = None
    record: dict = field(default_factory=dict)
    scores: suite.CaseScores = field(default_factory=suite.CaseScores)
    warnings: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    attempts: int = 0


def _in_app(app, plan: _Plan, case: dict) -> _CaseResult | None:
    with app.app_context():
        try:
            return _run_case(plan, case)
        finally:
            db.session.remove()


def _with_timeout(fn: Callable[[], object], seconds: float):
    """Run fn in its own thread, in an app context, and stop waiting after `seconds` (the thread is left to
    finish: its provider call has the same timeout, so it ends soon after)."""
    app = current_app._get_current_object()

    def in_app():
        with app.app_context():
            try:
                return fn()
            finally:
                db.session.remove()

    try:
        return run_with_timeout(in_app, seconds, name="magnet-eval-call")
    except Overran:
        raise CaseTimeout(f"no answer within {seconds:g} s") from None


def _run_case(plan: _Plan, case: dict) -> _CaseResult | None:
    result = _CaseResult(status="ok")
    result.warnings = [f"expected source '{s['id']}' matches no document of the target's knowledge sources"
                       for s in case["expected_sources"] if s["id"] not in plan.known_sources]
    evaluation = plan.evaluation
    answered = None
    started = time.perf_counter()
    for attempt in range(1, plan.retries + 2):
        result.attempts = attempt
        if plan.cancel.is_set():
            if attempt == 1:
                return None  # never started: no result, as for the cases the run never reached
            result.status, result.error = "error", "the run was cancelled before this case finished"
            return result
        started = time.perf_counter()
        try:
            answered = _with_timeout(lambda: eval_targets.answer_case(evaluation, case, plan.depth), plan.timeout_s)
            break
        except CaseTimeout as exc:
            result.status, result.error = "timeout", str(exc)
        except NOT_RETRIED as exc:
            result.status, result.error = "error", exc.message
            return result
        except MagnetError as exc:
            result.status, result.error = "error", f"{exc.code}: {exc.message}"
        except Exception as exc:
            result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
        if attempt <= plan.retries:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
    if answered is None:
        return result
    result.status, result.error = "ok", None
    result.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    result.record = answered.record
    result.prompt_tokens, result.completion_tokens = answered.usage.prompt_tokens, answered.usage.completion_tokens
    result.cost = answered.cost
    _score(plan, case, answered, result)
    return result


def _score(plan: _Plan, case: dict, answered, result: _CaseResult) -> None:
    judges: list[eval_targets.MeteredJudge] = []

    def judge_for(spec):
        judge = eval_targets.MeteredJudge(plan.evaluation, case["id"])
        judges.append(judge)
        return judge

    expected = case["expected_output"]
    case_input = suite.CaseInput(input=case["input"], expected_output=expected,
                                 expected_sources=case["expected_sources"],
                                 expected_no_answer=case["expected_no_answer"])
    try:
        result.scores = suite.score_case(plan.specs, case_input, answered.output, embedder=plan.embedder,
                                         judge_for=judge_for)
    except Exception as exc:  # a bug in a metric must cost this case, not the run
        log.exception("scoring case %s failed", case["id"])
        result.status, result.error = "error", f"scoring failed: {type(exc).__name__}: {exc}"
    for judge in judges:
        result.prompt_tokens += judge.usage.prompt_tokens
        result.completion_tokens += judge.usage.completion_tokens
        result.cost += judge.cost


def _store(run: EvaluationRun, case: dict, outcome: _CaseResult) -> None:
    db.session.add(EvaluationResult(
        run_id=run.id, case_id=case["id"], ordinal=case["ordinal"], status=outcome.status, error=outcome.error,
        output=outcome.record, scores=outcome.scores.scores, metric_errors=outcome.scores.errors,
        details={**outcome.scores.details, **({NOT_APPLICABLE: outcome.scores.not_applicable}
                                              if outcome.scores.not_applicable else {})},
        warnings=outcome.warnings, latency_ms=outcome.latency_ms,
        prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
        cost=round(outcome.cost, 10), attempts=outcome.attempts))
    run.cases_done += 1
    if outcome.status != "ok":
        run.cases_failed += 1
    db.session.commit()


# -- the end of a run ----------------------------------------------------------------------------------


def _finish(run: EvaluationRun, status: str, message: str | None = None) -> None:
    run.status = status
    run.message = message
    run.finished_at = utcnow()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 2)


def finalize(run: EvaluationRun, cancelled: bool = False) -> None:
    """Aggregate the stored scores, judge the thresholds and end the run."""
    evaluation = get_evaluation(run.evaluation_id)
    specs = suite.parse_metrics(run.target_snapshot.get("metrics") or evaluation.metrics, evaluation.type)
    rows = db.session.execute(select(
        EvaluationResult.case_id, EvaluationResult.status, EvaluationResult.scores, EvaluationResult.metric_errors,
        EvaluationResult.details, EvaluationResult.latency_ms, EvaluationResult.prompt_tokens,
        EvaluationResult.completion_tokens, EvaluationResult.cost).where(EvaluationResult.run_id == run.id)).all()
    per_case = {r.case_id: (r.scores or {}) for r in rows}
    errors = {r.case_id: (r.metric_errors or {}) for r in rows}
    not_applicable = {r.case_id: (r.details or {}).get(NOT_APPLICABLE, {}) for r in rows}
    run.metrics = suite.aggregate(specs, per_case, errors, not_applicable=not_applicable)
    thresholds = run.target_snapshot.get("thresholds", evaluation.thresholds) or {}
    run.thresholds = suite.judge_thresholds(thresholds, run.metrics)
    latencies = sorted(r.latency_ms for r in rows if r.latency_ms is not None)
    run.totals = {
        "cases": len(rows),
        "errors": sum(1 for r in rows if r.status != "ok"),
        "timeouts": sum(1 for r in rows if r.status == "timeout"),
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95),
                       "mean": round(statistics.fmean(latencies), 2) if latencies else None},
        "tokens": {"input": sum(r.prompt_tokens for r in rows), "output": sum(r.completion_tokens for r in rows)},
        "cost": round(sum(r.cost for r in rows), 10),
    }
    if cancelled:
        _finish(run, "cancelled", f"Cancelled after {len(rows)} of {run.cases_total} cases; "
                                  "the aggregates cover those cases only.")
        run.passed = None
    else:
        _finish(run, "completed", None)
        run.passed = all(t["passed"] for t in run.thresholds.values()) if run.thresholds else None
        if run.totals["errors"]:
            run.message = f"{run.totals['errors']} of {len(rows)} cases failed or timed out; see their results."
    db.session.commit()


# -- recovery ------------------------------------------------------------------------------------------


def recover_interrupted_runs(queued_before=None) -> list[str]:
    """On worker start and at each periodic tick: runs whose worker died are queued again and resume where
    they stopped. Queued runs (all, or those queued before a time) are delivered again, in case the queue
    lost their message; a duplicate delivery does nothing (claiming is atomic)."""
    running = db.session.execute(
        select(EvaluationRun.id, EvaluationRun.trigger, EvaluationRun.heartbeat_at)
        .where(EvaluationRun.status == "running")).all()
    db.session.commit()
    cutoff = stale_before()
    resumed = []
    for run_id, trigger, heartbeat in running:
        with abandoned_lease("eval", run_id) as abandoned:
            if not (abandoned or heartbeat is None or heartbeat < cutoff):
                continue
            # A CLI run has nobody to resume it in the background: it fails, and its command says so.
            values = ({"status": "failed", "message": INTERRUPTED, "finished_at": utcnow()} if trigger == "cli"
                      else {"status": "queued"})
            changed = db.session.execute(update(EvaluationRun).where(
                EvaluationRun.id == run_id, EvaluationRun.status == "running").values(**values)).rowcount
            db.session.commit()
            if changed and trigger != "cli":
                resumed.append(run_id)
    query = select(EvaluationRun.id).where(EvaluationRun.status == "queued", EvaluationRun.trigger != "cli")
    if queued_before is not None:
        query = query.where((EvaluationRun.updated_at < queued_before) | EvaluationRun.id.in_(resumed))
    queued = db.session.execute(query).scalars().all()
    db.session.commit()
    for run_id in queued:
        enqueue("run_evaluation", run_id)
    return resumed
