"""Sync runs whose worker is gone: failed ("worker lost") so the next sync can start, and queued runs
delivered again. Called when a worker starts, by the periodic tick (app.services.periodic), and when a
new sync finds one still active."""
from __future__ import annotations

import logging

from sqlalchemy import select, update

from app.common.queue import enqueue
from app.extensions import db
from app.models import SyncRun, utcnow
from app.services.leases import abandoned_lease
from app.services.liveness import stale_before
from app.services.sync import _update_source_after

log = logging.getLogger(__name__)
INTERRUPTED = ("Interrupted (worker lost): the process running this sync stopped before it ended. "
               "Run the sync again.")


def recover_interrupted_runs() -> int:
    """On worker start: runs whose worker died are marked failed (a re-sync converges, because chunk
    ids are deterministic and writes are upserts); queued runs are queued again."""
    failed = fail_dead_runs()
    requeue_queued_runs()
    return len(failed)


def requeue_queued_runs(queued_before=None) -> list[str]:
    """Deliver queued runs again (all, or those queued before a time): a message the queue lost (a Redis
    restarted without persistence) must not leave a run queued forever. A duplicate is harmless: claiming
    is atomic."""
    query = select(SyncRun.id).where(SyncRun.status == "queued")
    if queued_before is not None:
        query = query.where(SyncRun.created_at < queued_before)
    queued = db.session.execute(query).scalars().all()
    db.session.commit()
    for run_id in queued:
        enqueue("sync_source", run_id)
    return queued


# -- knowing whether a running sync's worker is alive ---------------------------------------------
#
# By its heartbeat in the database (app.services.liveness), older than MAGNET_RUN_STALE_SECONDS: the
# truth for every node. On one machine its lease (app.services.leases) also tells at once. This never
# mistakes a live run for a dead one, unlike "force" recovery from a CLI, which would fail a sync that
# `magnet serve` is running in the same data dir.


def fail_dead_runs(source_id: str | None = None) -> list[str]:
    """Mark failed the 'running' syncs (of one source, or all) whose worker is gone; returns their ids.

    Dead means: it has written no heartbeat for MAGNET_RUN_STALE_SECONDS (the worker, wherever it ran, is
    gone or cut off), or its lease in this data dir is free (certain, immediate, single machine). The
    update is conditional on the run still running, so a run that ended meanwhile keeps its real outcome.
    """
    query = select(SyncRun.id, SyncRun.heartbeat_at).where(SyncRun.status == "running")
    if source_id:
        query = query.where(SyncRun.source_id == source_id)
    running = db.session.execute(query).all()
    db.session.commit()  # end the read; nothing stays open while we look at the locks
    cutoff = stale_before()
    failed = []
    for run_id, heartbeat in running:
        with abandoned_lease("sync", run_id) as abandoned:
            dead = abandoned or heartbeat is None or heartbeat < cutoff
            if dead and _fail_if_running(run_id):
                failed.append(run_id)
    if failed:
        log.warning("marked %d interrupted sync runs as failed: %s", len(failed), ", ".join(failed))
    return failed


def _fail_if_running(run_id: str) -> bool:
    now = utcnow()
    changed = db.session.execute(
        update(SyncRun).where(SyncRun.id == run_id, SyncRun.status == "running")
        .values(status="failed", message=INTERRUPTED, finished_at=now)
    ).rowcount
    if not changed:
        db.session.commit()
        return False
    run = db.session.get(SyncRun, run_id)
    db.session.refresh(run)
    _update_source_after(run, resync=False)
    return True
