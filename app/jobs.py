"""The background job queue (Huey): SQLite-backed in the data dir by default, Redis when configured."""
from __future__ import annotations

from huey import RedisHuey, SqliteHuey

from app.config import Config


def make_queue(config: Config):
    if config.redis_url:
        return RedisHuey("magnet", url=config.redis_url)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("magnet", filename=str(config.data_dir / "jobs.db"))


def queue_state(queue) -> dict:
    """What /api/status shows of the queue; a queue that cannot be read says so instead of failing."""
    backend = "redis" if isinstance(queue, RedisHuey) else "sqlite"
    try:
        return {"backend": backend, "pending": queue.pending_count(), "scheduled": queue.scheduled_count()}
    except Exception as exc:  # the status page must render even when the queue is down
        return {"backend": backend, "error": str(exc)}
