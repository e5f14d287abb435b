"""Agent tasks: create, list, change, execute now, cancel, and hand each agent its queue.

A task is `assigned` until a worker claims it (`in_progress`, app.services.task_runner), then `completed`,
`failed` or `cancelled`. An agent's pending tasks are those `assigned` and due (no `next_run_at`, or one
passed); they run in order: `execute`d first, then by priority (urgent, high, medium, low), then oldest first.

`dispatch` puts one `work_agent_tasks` job on the queue per free slot (an agent's `max_concurrent_tasks`,
and MAGNET_MAX_RUNNING_TASKS across all agents); each job claims the agent's next pending task atomically,
so a surplus job finds nothing and ends. A task with a `schedule` (as knowledge sources have) is put back
to `assigned` by the periodic tick when its `next_run_at` comes.
"""
from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from sqlalchemy import func, or_, select, update

from app.common.pagination import paginate
from app.common.queue import enqueue
from app.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from app.extensions import db
from app.models import PRIORITY_RANK, Agent, AgentTask, utcnow
from app.services import scheduler

log = logging.getLogger(__name__)
FINISHED = ("completed", "failed", "cancelled")
CANCELLED = {"code": "cancelled", "message": "Cancelled by a user."}


# -- the API's use cases ---------------------------------------------------------------------------


def get_task(task_id: str) -> AgentTask:
    task = db.session.get(AgentTask, task_id)
    if task is None:
        raise NotFound(f"Task {task_id} does not exist.", details={"id": task_id})
    return task


def list_tasks(args: dict) -> dict:
    query = select(AgentTask)
    for name in ("agent_id", "status", "priority"):
        if args.get(name):
            query = query.where(getattr(AgentTask, name) == args[name])
    if args.get("since") is not None:
        query = query.where(AgentTask.created_at >= args["since"])
    return paginate(query, AgentTask, args)


def create_task(body: dict) -> AgentTask:
    """Assign a task to an agent (422 naming the field for an unknown agent or a bad schedule); it runs
    when the agent's queue reaches it, or at its schedule's first time."""
    body = dict(body)
    agent = _agent_of(body["agent_id"])
    schedule = scheduler.validate_schedule(body.pop("schedule", None))
    task = AgentTask(**body, schedule=schedule, priority_rank=PRIORITY_RANK[body.get("priority", "medium")],
                     next_run_at=scheduler.next_run(schedule, utcnow()))
    db.session.add(task)
    db.session.commit()
    _dispatch_quietly(agent.id)
    return task


def update_task(task_id: str, body: dict) -> AgentTask:
    """Change the fields sent; refused (409) while the task runs."""
    task = get_task(task_id)
    if task.status == "in_progress":
        raise Conflict(f"Task {task_id} is running; cancel it or wait for it to end.", code="task_running")
    body = dict(body)
    if "agent_id" in body:
        body["agent_id"] = _agent_of(body["agent_id"]).id
    if "priority" in body:
        task.priority_rank = PRIORITY_RANK[body["priority"]]
    if "schedule" in body:
        body["schedule"] = scheduler.validate_schedule(body["schedule"])
        task.next_run_at = scheduler.next_run(body["schedule"], utcnow())
    for key, value in body.items():
        setattr(task, key, value)
    db.session.commit()
    _dispatch_quietly(task.agent_id)
    return task


def delete_task(task_id: str) -> None:
    task = get_task(task_id)
    if task.status == "in_progress":
        raise Conflict(f"Task {task_id} is running; cancel it first.", code="task_running")
    db.session.delete(task)
    db.session.commit()


def execute_task(task_id: str) -> AgentTask:
    """Run the task now, ahead of the agent's queue (a finished one runs again); 409 while it runs.
    Still bounded: with every slot of the agent busy it runs as soon as one frees."""
    task = get_task(task_id)
    if task.status == "in_progress":
        raise Conflict(f"Task {task_id} is already running.", code="task_running")
    task.status, task.run_now, task.cancel_requested = "assigned", True, False
    task.error, task.attempts, task.finished_at = None, 0, None
    db.session.commit()
    dispatch(task.agent_id)
    return task


def cancel_task(task_id: str) -> AgentTask:
    """Cancel a waiting or running task. A running one is cancelled at once: its worker sees the status
    within a fraction of a second, stops the turn at its next step and writes nothing over it."""
    task = get_task(task_id)
    changed = db.session.execute(
        update(AgentTask).where(AgentTask.id == task_id, AgentTask.status.in_(("assigned", "in_progress")))
        .values(status="cancelled", cancel_requested=True, error=CANCELLED, finished_at=utcnow(),
                next_run_at=None, updated_at=utcnow())
    ).rowcount
    db.session.commit()
    db.session.refresh(task)
    if not changed:
        raise Conflict(f"Task {task_id} has already ended ({task.status}).", code="task_finished",
                       details={"status": task.status})
    _dispatch_quietly(task.agent_id)
    return task


def _agent_of(agent_id: str) -> Agent:
    agent = db.session.get(Agent, agent_id)
    if agent is None:
        raise ValidationFailed(f"Agent {agent_id} does not exist.", code="unknown_agent",
                               details={"fields": {"agent_id": ["no such agent"]}})
    return agent


# -- the queue ---------------------------------------------------------------------------------------


def pending_condition(now: datetime | None = None):
    """Tasks an agent should run now: assigned and due."""
    now = now or utcnow()
    return (AgentTask.status == "assigned",
            or_(AgentTask.next_run_at.is_(None), AgentTask.next_run_at <= now, AgentTask.run_now.is_(True)))


QUEUE_ORDER = (AgentTask.run_now.desc(), AgentTask.priority_rank.desc(), AgentTask.created_at.asc(),
               AgentTask.id.asc())


def pending_tasks(agent_id: str, limit: int = 100) -> list[AgentTask]:
    """The agent's pending tasks in the order they will run."""
    return list(db.session.execute(select(AgentTask).where(AgentTask.agent_id == agent_id, *pending_condition())
                                   .order_by(*QUEUE_ORDER).limit(limit)).scalars())


def dispatch(agent_id: str | None = None) -> list[str]:
    """Queue a worker job per free slot of the agent (or of every agent with pending tasks); returns the
    agents a job was queued for. ServiceUnavailable when the queue is down (the tick tries again)."""
    free_overall = current_app.extensions["magnet.config"].max_running_tasks - running_count()
    if free_overall <= 0:
        return []
    query = (select(AgentTask.agent_id, func.count()).where(*pending_condition()).group_by(AgentTask.agent_id))
    if agent_id:
        query = query.where(AgentTask.agent_id == agent_id)
    waiting = dict(db.session.execute(query).all())
    queued = []
    for agent, count in waiting.items():
        row = db.session.execute(select(Agent.max_concurrent_tasks, Agent.status).where(Agent.id == agent)).first()
        if row is None or row.status == "inactive":
            continue
        slots = min(count, row.max_concurrent_tasks - running_count(agent), free_overall)
        db.session.commit()  # nothing stays open while we enqueue
        for _ in range(max(slots, 0)):
            enqueue("work_agent_tasks", agent)
            queued.append(agent)
        free_overall -= max(slots, 0)
        if free_overall <= 0:
            break
    return queued


def _dispatch_quietly(agent_id: str) -> None:
    """After a change that may let work start: a queue that is down only delays it (the tick dispatches)."""
    try:
        dispatch(agent_id)
    except ServiceUnavailable:
        log.warning("tasks of agent %s wait for the job queue", agent_id)


def running_count(agent_id: str | None = None) -> int:
    query = select(func.count()).select_from(AgentTask).where(AgentTask.status == "in_progress")
    if agent_id:
        query = query.where(AgentTask.agent_id == agent_id)
    return db.session.execute(query).scalar_one()


def reopen_due_tasks(now: datetime | None = None) -> list[str]:
    """Scheduled tasks whose next run has come go back to `assigned` (a cancelled one stays cancelled)."""
    now = now or utcnow()
    due = db.session.execute(select(AgentTask.id).where(
        AgentTask.schedule.is_not(None), AgentTask.next_run_at <= now,
        AgentTask.status.in_(("completed", "failed")))).scalars().all()
    if due:
        db.session.execute(update(AgentTask).where(AgentTask.id.in_(due), AgentTask.status.in_(("completed", "failed")))
                           .values(status="assigned", attempts=0, cancel_requested=False, updated_at=now))
    db.session.commit()
    return list(due)
