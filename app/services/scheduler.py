"""Scheduled syncs: a source's `schedule` is an interval or a cron expression; the job queue's periodic
tick (every minute) starts the syncs that are due."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from croniter import croniter
from sqlalchemy import select

from app.errors import Conflict, ServiceUnavailable, ValidationFailed
from app.extensions import db
from app.models import KnowledgeSource, utcnow

log = logging.getLogger(__name__)
MIN_INTERVAL_MINUTES = 5


def validate_schedule(schedule: dict | None) -> dict | None:
    if not schedule:
        return None
    keys = set(schedule)
    if keys == {"interval_minutes"}:
        minutes = schedule["interval_minutes"]
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < MIN_INTERVAL_MINUTES:
            raise ValidationFailed(f"schedule.interval_minutes must be a whole number >= {MIN_INTERVAL_MINUTES}.",
                                   details={"fields": {"schedule.interval_minutes": ["invalid"]}})
        return {"interval_minutes": minutes}
    if keys == {"cron"}:
        expression = schedule["cron"]
        if not isinstance(expression, str) or not croniter.is_valid(expression):
            raise ValidationFailed(f"schedule.cron {expression!r} is not a valid cron expression.",
                                   details={"fields": {"schedule.cron": ["invalid cron expression"]}})
        return {"cron": expression}
    raise ValidationFailed('schedule must be {"interval_minutes": N} or {"cron": "m h dom mon dow"}.',
                           details={"fields": {"schedule": ["unknown form"]}})


def next_run(schedule: dict | None, after: datetime) -> datetime | None:
    if not schedule:
        return None
    if "interval_minutes" in schedule:
        return after + timedelta(minutes=schedule["interval_minutes"])
    return croniter(schedule["cron"], after).get_next(datetime)


def start_due_syncs(now: datetime | None = None) -> list[str]:
    """Start a sync of every source whose next_sync_at has passed; returns the run ids started."""
    from app.services.sync import start_sync

    now = now or utcnow()
    due = db.session.execute(
        select(KnowledgeSource).where(KnowledgeSource.next_sync_at.is_not(None), KnowledgeSource.next_sync_at <= now)
    ).scalars().all()
    started = []
    for source in due:
        source.next_sync_at = next_run(source.schedule, now)
        db.session.commit()
        try:
            started.append(start_sync(source.id, trigger="schedule").id)
        except Conflict:
            log.info("scheduled sync of %s skipped: one is already running", source.id)
        except ServiceUnavailable:  # the queue is down: due again at the next tick
            source.next_sync_at = now
            db.session.commit()
            log.warning("scheduled sync of %s postponed: the job queue is unavailable", source.id)
            break
    return started
