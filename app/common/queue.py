"""The background job queue (Huey) as services see it: make it, put a task on it, report its state.

Services enqueue by task name; `app.jobs` binds those names to the service functions that run them.
Keeping this half here lets services start background work without importing app.jobs, which imports them.
"""
from __future__ import annotations

from flask import current_app
from huey import RedisHuey, SqliteHuey

from app.config import Config


def make_queue(config: Config):
    if config.redis_url:
        return RedisHuey("magnet", url=config.redis_url)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("magnet", filename=str(config.data_dir / "jobs.db"))


def enqueue(task: str, *args) -> None:
    """Run the task registered under `task` (app.jobs.register_tasks) in the background."""
    current_app.extensions["magnet.tasks"][task](*args)


def queue_state(queue) -> dict:
    """What /api/status shows of the queue; a queue that cannot be read says so instead of failing."""
    backend = "redis" if isinstance(queue, RedisHuey) else "sqlite"
    try:
        return {"backend": backend, "pending": queue.pending_count(), "scheduled": queue.scheduled_count()}
    except Exception as exc:  # the status page must render even when the queue is down
        return {"backend": backend, "error": str(exc)}
