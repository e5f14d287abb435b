"""Sync run records: start one (202, or 409 while another is active), ask for a re-sync, look one up,
cancel one. The background work a run stands for is in app.services.sync."""
from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.common.queue import enqueue
from app.errors import Conflict, NotFound, ServiceUnavailable
from app.extensions import db
from app.models import ACTIVE_SYNC_STATUSES, KnowledgeSource, SyncRun, utcnow
from app.services.sources_config import hide_server_paths


def start_sync(source_id: str, trigger: str = "manual") -> SyncRun:
    """Queue a sync of a source; 409 if one is already queued or running (the database enforces it)."""
    source = db.session.get(KnowledgeSource, source_id)
    if source is None:
        raise NotFound(f"Knowledge source {source_id} does not exist.")
    run = SyncRun(source_id=source_id, trigger=trigger)
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        from app.services.sync_recovery import fail_dead_runs

        if fail_dead_runs(source_id):  # the active run's worker had died: that run no longer blocks
            return start_sync(source_id, trigger)
        active = active_run(source_id)
        raise Conflict(
            f"A sync of {source.name} is already {active.status if active else 'running'}.",
            code="sync_in_progress",
            details={"run_id": active.id if active else None},
        ) from None
    run_id = run.id
    try:
        enqueue("sync_source", run_id)
    except ServiceUnavailable:
        # No message, no run: a queued run nobody will ever take would block the next sync with 409.
        db.session.rollback()
        db.session.execute(delete(SyncRun).where(SyncRun.id == run_id, SyncRun.status == "queued"))
        db.session.commit()
        raise
    return run


def request_resync(source_id: str) -> SyncRun | None:
    """Files arrived while a sync runs: start another sync as soon as this one ends.

    If the running sync ended between the caller's failed start and this flag, it never reads the flag:
    the next sync is then started here, and returned.
    """
    flag = update(KnowledgeSource).where(KnowledgeSource.id == source_id)
    db.session.execute(flag.values(resync_requested=True))
    db.session.commit()
    if active_run(source_id) is not None:
        return None  # it reads the flag in the transaction that ends it (see _update_source_after)
    db.session.execute(flag.values(resync_requested=False))
    db.session.commit()
    try:
        return start_sync(source_id, trigger="upload")
    except Conflict:
        return None  # another sync started meanwhile: it lists the folder after these files were saved


def active_run(source_id: str) -> SyncRun | None:
    return db.session.execute(
        select(SyncRun).where(SyncRun.source_id == source_id, SyncRun.status.in_(ACTIVE_SYNC_STATUSES))
    ).scalar_one_or_none()


def get_run(source_id: str, run_id: str) -> SyncRun:
    run = db.session.get(SyncRun, run_id)
    if run is None or run.source_id != source_id:
        raise NotFound(f"Sync run {run_id} does not exist for source {source_id}.")
    return run


def cancel_sync(source_id: str, run_id: str) -> SyncRun:
    """Ask a run to stop. A queued run stops at once; a running one at its next document."""
    run = get_run(source_id, run_id)
    if run.status not in ACTIVE_SYNC_STATUSES:
        raise Conflict(f"Sync run {run_id} has already ended ({run.status}).", code="sync_finished")
    run.cancel_requested = True
    if run.status == "queued":
        finish_run(run, "cancelled", "Cancelled before it started.")
    db.session.commit()
    return run


def finish_run(run: SyncRun, status: str, message: str | None = None) -> None:
    """End a run (the caller commits); its message never shows a server path."""
    run.status = status
    run.message = hide_server_paths(message) if message else message
    run.finished_at = utcnow()
