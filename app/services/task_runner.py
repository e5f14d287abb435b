"""Running agent tasks on the job queue: claim within the bounds, run the turn, record the outcome,
recover what a lost worker left.

A task runs as a turn of its agent in a conversation of its own (made on its first run), so it is visible
with the agent's other conversations, traced like them, and metered: every ledger row of the turn carries
the task's id (app.services.usage.metering).

The turn runs in a thread; the job's thread watches the task meanwhile. When the task is no longer
`in_progress` (a user cancelled it, or the reaper took it from a worker it thought lost) the job stops
waiting at once and writes nothing; the turn stops at its next step (its next event raises) and its
message is saved in the conversation as failed. A worker killed mid-task leaves the task `in_progress`
with a heartbeat that stops and a lease nobody holds: `recover_lost_tasks` (on worker start and in the
periodic tick) puts it back to `assigned` for another attempt, or fails it with the reason once its
attempts are spent.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from flask import current_app
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import aliased

from app.errors import Conflict, MagnetError
from app.extensions import db
from app.models import Agent, AgentTask, Conversation, utcnow
from app.services import conversations, scheduler, tasks, turns
from app.services.leases import Lease, abandoned_lease
from app.services.liveness import RunHeartbeat, stale_before
from app.services.usage import metering

log = logging.getLogger(__name__)
WATCH_SECONDS = 0.2  # how soon a running task notices it was cancelled
CLAIM_LOCK = 0x4D41474E  # PostgreSQL advisory lock: claims count running tasks one at a time
LOST = ("Interrupted (worker lost): the process running this task stopped before it ended.")


class TaskCancelled(Conflict):
    """Raised into a running turn (at its next event) when its task was cancelled."""


def work_agent_tasks(agent_id: str) -> None:
    """The queue job: run the agent's pending tasks one after another while it may; then let other
    agents that waited on the global bound start."""
    ran = False
    while (task_id := claim_next(agent_id)) is not None:
        ran = True
        run_claimed(task_id)
    if ran:
        tasks.dispatch()


def claim_next(agent_id: str) -> str | None:
    """Claim the agent's next pending task if a slot is free (its own and the global bound); its id or None."""
    agent = db.session.get(Agent, agent_id)
    if agent is None or agent.status == "inactive":
        db.session.commit()
        return None
    limit, overall = agent.max_concurrent_tasks, current_app.extensions["magnet.config"].max_running_tasks
    for _ in range(10):  # another worker may take the candidate first: try the next one
        candidate = db.session.execute(select(AgentTask.id).where(AgentTask.agent_id == agent_id,
                                                                  *tasks.pending_condition())
                                       .order_by(*tasks.QUEUE_ORDER).limit(1)).scalar()
        if candidate is None:
            db.session.commit()
            return None
        if _claim(candidate, agent_id, limit, overall):
            return candidate
        if db.session.execute(select(AgentTask.status).where(AgentTask.id == candidate)).scalar() == "assigned":
            db.session.commit()
            return None  # still there: no slot is free
    db.session.commit()
    return None


def _claim(task_id: str, agent_id: str, limit: int, overall: int) -> bool:
    """One conditional UPDATE: the task is still assigned and fewer than the bounds run. SQLite runs it
    as one write; PostgreSQL takes an advisory lock first so two claims cannot both count the same room."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK})
    running = aliased(AgentTask)
    of_agent = (select(func.count()).select_from(running)
                .where(running.agent_id == agent_id, running.status == "in_progress").scalar_subquery())
    of_all = select(func.count()).select_from(running).where(running.status == "in_progress").scalar_subquery()
    now = utcnow()
    claimed = db.session.execute(
        update(AgentTask).where(AgentTask.id == task_id, AgentTask.status == "assigned", of_agent < limit,
                                of_all < overall)
        .values(status="in_progress", attempts=AgentTask.attempts + 1, started_at=now, heartbeat_at=now,
                finished_at=None, run_now=False, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return bool(claimed)


def run_claimed(task_id: str) -> None:
    """Run a claimed task's turn and record its outcome (unless it was cancelled or reaped meanwhile)."""
    lease = Lease("task", task_id)
    lease.acquire()  # this process runs it: on this machine its death is seen at once (app.services.leases)
    try:
        task = db.session.get(AgentTask, task_id)
        db.session.refresh(task)
        if task.schedule:
            task.next_run_at = scheduler.next_run(task.schedule, utcnow())
        _touch_agent(task.agent_id)
        db.session.commit()
        with RunHeartbeat(AgentTask, task_id, running_status="in_progress"):
            outcome = _run_turn(task)
        if outcome is not None:
            _record(task_id, outcome)
    except Exception as exc:  # the task must end visibly, whatever happened
        log.exception("task %s failed", task_id)
        db.session.rollback()
        _record(task_id, {"error": {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"[:1000]}})
    finally:
        lease.release()


def _run_turn(task: AgentTask) -> dict[str, Any] | None:
    """The task's turn, watched; the outcome to record, or None when the task stopped being ours."""
    try:
        conversation = _conversation_of(task)
        turn = turns.prepare(conversation, f"{task.title}\n\n{task.instructions}")
    except MagnetError as exc:
        db.session.rollback()
        return {"error": {"code": exc.code, "message": exc.message}}
    task_id, stopped, outcome = task.id, threading.Event(), {}
    app = current_app._get_current_object()

    def emit(event: dict) -> None:
        if stopped.is_set():
            raise TaskCancelled(f"Task {task_id} was cancelled.", code="task_cancelled")

    def work() -> None:
        with app.app_context(), metering(task_id=task_id):
            try:
                message, _ = turns.execute(turn, emit)
                outcome["message"] = message
            except turns.TurnFailed as failed:
                outcome["error"] = {"code": failed.error.code, "message": failed.error.message,
                                    "message_id": failed.message["id"]}
            except Exception as exc:
                log.exception("turn of task %s failed", task_id)
                outcome["error"] = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"[:1000]}

    thread = threading.Thread(target=work, name=f"task-{task_id}", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(WATCH_SECONDS)
        if thread.is_alive() and _status(task_id) != "in_progress":
            stopped.set()  # cancelled or reaped: stop the turn at its next step and leave the task alone
            return None
    return outcome


def _conversation_of(task: AgentTask):
    if task.conversation_id and db.session.get(Conversation, task.conversation_id) is not None:
        return conversations.get_conversation(task.conversation_id)
    conversation = conversations.new_conversation(task.agent_id, f"task:{task.id}")
    task.conversation_id = conversation.id
    db.session.commit()
    return conversation


def _status(task_id: str) -> str | None:
    status = db.session.execute(select(AgentTask.status).where(AgentTask.id == task_id)).scalar()
    db.session.commit()
    return status


def _record(task_id: str, outcome: dict[str, Any]) -> None:
    """Write the outcome only over a task still in progress: a cancel or a reap that came first stands."""
    now = utcnow()
    if "message" in outcome:
        message = outcome["message"]
        values = {"status": "completed", "error": None, "result": {
            key: message[key] for key in ("content", "citations", "tool_calls", "no_answer", "usage", "latency_ms",
                                          "model")} | {"message_id": message["id"]}}
    else:
        values = {"status": "failed", "error": outcome["error"]}
    changed = db.session.execute(update(AgentTask).where(AgentTask.id == task_id, AgentTask.status == "in_progress")
                                 .values(**values, finished_at=now, updated_at=now)).rowcount
    task = db.session.get(AgentTask, task_id)
    if changed and task is not None:
        _touch_agent(task.agent_id)
    db.session.commit()


def _touch_agent(agent_id: str) -> None:
    now = utcnow()
    db.session.execute(update(Agent).where(Agent.id == agent_id).values(last_seen_at=now, last_activity_at=now))


# -- recovery ----------------------------------------------------------------------------------------


def recover_lost_tasks() -> list[str]:
    """Tasks `in_progress` whose worker is gone (its lease here is free, or its heartbeat is stale) go back
    to `assigned` for another attempt, or fail with the reason once `max_attempts` runs were lost; the
    agents' queues are dispatched again. Returns the ids recovered."""
    running = db.session.execute(select(AgentTask.id, AgentTask.heartbeat_at)
                                 .where(AgentTask.status == "in_progress")).all()
    db.session.commit()
    cutoff, recovered = stale_before(), []
    for task_id, heartbeat in running:
        with abandoned_lease("task", task_id) as abandoned:
            if (abandoned or heartbeat is None or heartbeat < cutoff) and _give_back(task_id):
                recovered.append(task_id)
    if recovered:
        log.warning("recovered %d tasks whose worker was lost: %s", len(recovered), ", ".join(recovered))
        tasks.dispatch()
    return recovered


def _give_back(task_id: str) -> bool:
    now = utcnow()
    error = {"code": "worker_lost", "message": LOST}
    retried = db.session.execute(
        update(AgentTask).where(AgentTask.id == task_id, AgentTask.status == "in_progress",
                                AgentTask.attempts < AgentTask.max_attempts)
        .values(status="assigned", error={**error, "message": LOST + " It will be tried again."}, updated_at=now)
    ).rowcount
    failed = retried or db.session.execute(
        update(AgentTask).where(AgentTask.id == task_id, AgentTask.status == "in_progress")
        .values(status="failed", error={**error, "message": LOST + " No attempts are left."}, finished_at=now,
                updated_at=now)
    ).rowcount
    db.session.commit()
    return bool(retried or failed)
