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


def register_tasks(app: Flask, queue) -> None:
    """Bind Magnet's background tasks to `queue`, each running inside `app`'s context."""
    from app.services import scheduler, sync

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

    @queue.periodic_task(crontab(minute="*"), name="schedule_tick")
    def schedule_tick() -> None:
        with app.app_context():
            scheduler.start_due_syncs()

    app.extensions["magnet.queue"] = queue
    app.extensions["magnet.tasks"] = {"sync_source": sync_source, "build_index": build_index,
                                      "run_evaluation": run_evaluation}


class EmbeddedConsumer(Consumer):
    """A Huey consumer living inside another process (the web server, tests): it leaves the process's
    signal handlers alone, which Huey's own consumer would take over."""

    def _set_signal_handlers(self):
        pass


def _recover() -> None:
    """Before consuming: fail the syncs and resume the evaluation runs a dead worker left behind."""
    from app.services import eval_runs, sync

    failed = sync.recover_interrupted_runs()
    if failed:
        log.warning("marked %d interrupted sync runs as failed", failed)
    resumed = eval_runs.recover_interrupted_runs()
    if resumed:
        log.warning("resuming %d interrupted evaluation runs: %s", len(resumed), ", ".join(resumed))


def start_consumer(app: Flask, workers: int = 2) -> EmbeddedConsumer:
    """Start worker threads and the scheduler in this process; first recover runs a dead worker left."""
    with app.app_context():
        _recover()
    consumer = EmbeddedConsumer(app.extensions["magnet.queue"], workers=workers, worker_type="thread",
                                check_worker_health=False)
    consumer.start()
    return consumer


def run_consumer_forever(app: Flask, workers: int) -> None:
    """`magnet worker`: a consumer with Huey's own signal handling, in the foreground."""
    with app.app_context():
        _recover()
    Consumer(app.extensions["magnet.queue"], workers=workers, worker_type="thread").run()

