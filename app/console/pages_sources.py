"""Sources: list with status, create each type, sync with live progress and cancel, documents with their
status and failure reasons, drag-and-drop upload for file sources, schedule."""
import json
import time

from flask import Response, render_template, request, stream_with_context
from sqlalchemy import select

from app.console.access import page
from app.console.blueprint import bp
from app.console.listing import list_args
from app.extensions import db
from app.models import SOURCE_TYPES, SyncRun
from app.services import documents, sync
from app.services import knowledge_sources as sources

DOCUMENT_STATUSES = ("pending", "indexed", "indexed_with_warnings", "failed", "no_text")
ACTIVE = ("queued", "running")
# An open progress stream ends after this long; the page then reloads and opens a new one.
STREAM_SECONDS = 300
POLL_SECONDS = 0.4


@bp.get("/sources", endpoint="sources")
@page("viewer")
def sources_page():
    """Every source with its type, status, counts and last sync; a create form for operators."""
    listing = sources.list_sources(list_args(sort="created_at"))
    stats = sources.stats([s.id for s in listing["data"]])
    return render_template("console/sources.html", section="Sources", listing=listing, stats=stats,
                           types=SOURCE_TYPES)



@bp.get("/sources/<source_id>")
@page("viewer")
def source(source_id):
    """One source: its sync (live), documents (filter by status), upload, schedule and recent syncs."""
    found = sources.get_source(source_id)
    status = request.args.get("status") if request.args.get("status") in DOCUMENT_STATUSES else None
    docs = documents.list_documents(source_id, list_args(sort="updated_at", status=status))
    syncs = db.session.execute(select(SyncRun).where(SyncRun.source_id == source_id)
                               .order_by(SyncRun.created_at.desc()).limit(8)).scalars().all()
    return render_template("console/source.html", section="Sources", source=found,
                           stats=sources.stats([source_id])[source_id], docs=docs, status=status,
                           statuses=DOCUMENT_STATUSES, syncs=syncs, active=sync.active_run(source_id),
                           indexes=sources.indexes(source_id))


def progress_event(run: SyncRun) -> dict:
    total = run.documents_total
    counts = f"{run.added} added, {run.updated} updated, {run.unchanged} unchanged, {run.deleted} deleted, {run.failed} failed"
    done = f"{run.documents_done}/{total}" if total is not None else f"{run.documents_done}"
    return {"status": run.status, "done": run.documents_done, "total": total,
            "label": f"{run.status}: {done} documents · {counts}"}


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@bp.get("/sources/<source_id>/syncs/<run_id>/events")
@page("viewer")
def sync_events(source_id, run_id):
    """Server-Sent Events: `progress` while the sync runs, then `end` with its final state."""
    sync.get_run(source_id, run_id)  # 404 page before the stream starts

    def events():
        deadline = time.monotonic() + STREAM_SECONDS
        last = None
        while True:
            db.session.rollback()  # end the read transaction: see the worker's latest commit
            run = sync.get_run(source_id, run_id)
            event = progress_event(run)
            if run.status not in ACTIVE:
                yield _sse("end", event)
                return
            if event != last:
                yield _sse("progress", event)
                last = event
            elif time.monotonic() > deadline:
                yield _sse("end", event)
                return
            else:
                yield ": keep-alive\n\n"
            time.sleep(POLL_SECONDS)

    return Response(stream_with_context(events()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
