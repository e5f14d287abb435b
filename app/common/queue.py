"""The background job queue (Huey) as services see it: make it, put a task on it, report its state.

Services enqueue by task name; `app.jobs` binds those names to the service functions that run them.
Keeping this half here lets services start background work without importing app.jobs, which imports them.
"""
from __future__ import annotations

import logging

from flask import current_app
from huey import RedisHuey, SqliteHuey

from app.config import Config

log = logging.getLogger(__name__)


def make_queue(config: Config):
    if config.redis_url:
        # Bounded socket calls: a Redis that is down or frozen fails an enqueue within the timeout (503
        # queue_unavailable) instead of holding the request. Above Huey's 1 s blocking read.
        timeout = max(config.redis_timeout_seconds, 2.0)
        from redis import ConnectionPool

        pool = ConnectionPool.from_url(config.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return RedisHuey("magnet", connection_pool=pool)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("magnet", filename=str(config.data_dir / "jobs.db"))


def enqueue(task: str, *args) -> None:
    """Run the task registered under `task` (app.jobs.register_tasks) in the background;
    ServiceUnavailable (503 queue_unavailable) when the queue cannot take it. Callers undo what they
    committed for it, so no run is left queued with no message behind it."""
    try:
        current_app.extensions["magnet.tasks"][task](*args)
    except Exception as exc:
        from app.faults import unavailable

        log.warning("could not enqueue %s%r: %s: %s", task, args, type(exc).__name__, exc)
        raise unavailable("job_queue", exc) from exc


def queue_state(queue) -> dict:
    """What /api/status shows of the queue; a queue that cannot be read says so instead of failing."""
    backend = "redis" if isinstance(queue, RedisHuey) else "sqlite"
    try:
        return {"backend": backend, "pending": queue.pending_count(), "scheduled": queue.scheduled_count()}
    except Exception as exc:  # the status page must render even when the queue is down
        return {"backend": backend, "error": str(exc)}
