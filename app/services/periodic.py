"""The periodic tick: once a minute, on exactly one worker of the cluster (see liveness.claim_period).

It reaps runs whose worker was lost (their heartbeat went stale), delivers again queued runs the queue
may have lost, starts the scheduled syncs that are due, reopens the scheduled agent tasks that are due and
queues the agents' pending tasks, and forgets workers gone for a day.
"""
from __future__ import annotations

import logging
import os
import socket

from app.errors import ServiceUnavailable
from app.services import eval_runs, liveness, scheduler, swarm_runs, sync_recovery, task_runner, tasks

log = logging.getLogger(__name__)
TICK = "tick"


def tick() -> bool:
    """Run the tick if this process claims the current minute; False when another worker has it."""
    if not liveness.claim_period(TICK, f"{socket.gethostname()}:{os.getpid()}"):
        return False
    reap_lost_runs()
    scheduler.start_due_syncs()
    run_agent_tasks()
    liveness.forget_gone_workers()
    return True


def reap_lost_runs() -> dict:
    """Syncs whose heartbeat is stale are failed ("worker lost"), so the next sync can start; evaluation
    runs are queued again and resume; swarms are failed (app.services.swarm_runs). Runs queued for longer than the stale limit are delivered again."""
    cutoff = liveness.stale_before()
    failed = sync_recovery.fail_dead_runs()
    redelivered = sync_recovery.requeue_queued_runs(queued_before=cutoff)
    resumed = eval_runs.recover_interrupted_runs(queued_before=cutoff)
    lost_swarms = swarm_runs.recover_interrupted_swarms(queued_before=cutoff)
    if redelivered:
        log.warning("delivered %d queued sync runs again: %s", len(redelivered), ", ".join(redelivered))
    if resumed:
        log.warning("resuming %d evaluation runs whose worker was lost: %s", len(resumed), ", ".join(resumed))
    return {"failed_syncs": failed, "redelivered_syncs": redelivered, "resumed_evaluations": resumed,
            "failed_swarms": lost_swarms}


def run_agent_tasks() -> None:
    """Retry or fail the tasks a lost worker left, reopen the scheduled ones that are due, and queue every
    agent's pending tasks (a message the queue lost is delivered again this way)."""
    try:
        task_runner.recover_lost_tasks()
        tasks.reopen_due_tasks()
        tasks.dispatch()
    except ServiceUnavailable:  # the queue is down: the tasks wait, and the next tick tries again
        log.warning("agent tasks wait for the job queue")
