"""The background job queue (Huey): SQLite-backed in the data dir by default, Redis when configured.

Tasks are registered per app (they need its app context), so `create_app` makes the queue
(app.common.queue, where services enqueue by name) and `register_tasks` binds the task functions to it. A consumer runs either inside `magnet serve` (threads,
see `start_consumer`) or as `magnet worker` on any number of machines sharing Redis.
"""
from __future__ import annotations

import logging

from flask import Flask
from huey import crontab
from huey.consumer import Consumer

log = logging.getLogger(__name__)
# An idle worker thread polls the SQLite queue with a growing delay (Huey's default grows to 10 s); capped at
# 1 s so a task queued by POST /api/tasks/{id}/execute starts within a second. Redis reads block instead.
POLL_MAX_DELAY = 1.0


def register_tasks(app: Flask, queue) -> None:
    """Bind Magnet's background tasks to `queue`, each running inside `app`'s context."""
    from app.services import periodic, sync

    @queue.task(name="sync_source")
    def sync_source(run_id: str) -> None:
        with app.app_context():
            sync.run_sync(run_id)

    @queue.task(name="build_index")
    def build_index(index_id: str) -> None:
        from app.services import indexes

        with app.app_context():
            indexes.run_build(index_id)

    @queue.task(name="run_evaluation")
    def run_evaluation(run_id: str) -> None:
        from app.services import eval_runs

        with app.app_context():
            eval_runs.run_evaluation(run_id)

    @queue.task(name="run_swarm")
    def run_swarm(swarm_id: str) -> None:
        from app.services import swarm_runs

        with app.app_context():
            swarm_runs.run_swarm(swarm_id)

    @queue.task(name="deliver_handoff_webhook")
    def deliver_handoff_webhook(request_id: str, attempt: int) -> None:
        from app.services import handoff_webhooks

        with app.app_context():
            handoff_webhooks.deliver(request_id, attempt)

    @queue.task(name="process_agent_inbox")
    def process_agent_inbox(agent_id: str) -> None:
        from app.services import agent_messages

        with app.app_context():
            agent_messages.process_unread_messages(agent_id)

    @queue.task(name="work_agent_tasks")
    def work_agent_tasks(agent_id: str) -> None:
        from app.services import task_runner

        with app.app_context():
            task_runner.work_agent_tasks(agent_id)

    # Every consumer's scheduler enqueues this each minute; periodic.tick runs it once per minute across
    # all of them (a claim row in the database).
    @queue.periodic_task(crontab(minute="*"), name="schedule_tick")
    def schedule_tick() -> None:
        with app.app_context():
            periodic.tick()

    app.extensions["magnet.queue"] = queue
    app.extensions["magnet.tasks"] = {"sync_source": sync_source, "build_index": build_index,
                                      "run_evaluation": run_evaluation, "run_swarm": run_swarm,
                                      "deliver_handoff_webhook": deliver_handoff_webhook,
                                      "work_agent_tasks": work_agent_tasks,
                                      "process_agent_inbox": process_agent_inbox}


class EmbeddedConsumer(Consumer):
    """A Huey consumer living inside another process (the web server, tests): it leaves the process's
    signal handlers alone, which Huey's own consumer would take over."""

    def _set_signal_handlers(self):
        pass


def _recover() -> None:
    """Before consuming: fail the syncs and swarms, resume the evaluation runs and retry the agent tasks a
    dead worker left behind, and queue the agents' pending tasks."""
    from app.services import eval_runs, swarm_runs, sync_recovery, task_runner, tasks

    failed = sync_recovery.recover_interrupted_runs()
    if failed:
        log.warning("marked %d interrupted sync runs as failed", failed)
    resumed = eval_runs.recover_interrupted_runs()
    if resumed:
        log.warning("resuming %d interrupted evaluation runs: %s", len(resumed), ", ".join(resumed))
    swarm_runs.recover_interrupted_swarms()
    task_runner.recover_lost_tasks()
    tasks.dispatch()


def _recover_if_possible(app: Flask) -> None:
    """Recovery needs the database and the queue; when either is down the consumer still starts, and the
    periodic tick recovers once they are back."""
    with app.app_context():
        try:
            _recover()
        except Exception:
            log.exception("recovering interrupted runs failed; the periodic tick will retry")


def start_consumer(app: Flask, workers: int = 2) -> EmbeddedConsumer:
    """Start worker threads and the scheduler in this process; first recover runs a dead worker left."""
    from app.services.liveness import WorkerBeat

    _recover_if_possible(app)
    consumer = EmbeddedConsumer(app.extensions["magnet.queue"], workers=workers, worker_type="thread",
                                max_delay=POLL_MAX_DELAY,
                                check_worker_health=False)
    consumer.magnet_beat = WorkerBeat(app).start()
    consumer.start()
    return consumer


def stop_consumer(consumer: EmbeddedConsumer) -> None:
    consumer.stop(graceful=True)
    beat = getattr(consumer, "magnet_beat", None)
    if beat is not None:
        beat.stop()


def run_consumer_forever(app: Flask, workers: int) -> None:
    """`magnet worker`: a consumer with Huey's own signal handling, in the foreground."""
    from app.services.liveness import WorkerBeat

    _recover_if_possible(app)
    beat = WorkerBeat(app).start()
    try:
        Consumer(app.extensions["magnet.queue"], workers=workers, worker_type="thread",
                 max_delay=POLL_MAX_DELAY).run()
    finally:
        beat.stop()

