"""Knowledge sources: CRUD, schedules, and cleaning up their stores when they go."""
from __future__ import annotations

import shutil

from flask import current_app
from sqlalchemy import func, select

from app.common.pagination import paginate
from app.errors import Conflict, Forbidden, NotFound
from app.extensions import db
from app.models import Document, KnowledgeIndex, KnowledgeSource, SyncRun, utcnow
from app.services import engine
from app.services import indexes as index_service
from app.services.scheduler import next_run, validate_schedule
from app.services.sources_config import needs_admin, validate_configuration


def get_source(source_id: str) -> KnowledgeSource:
    source = db.session.get(KnowledgeSource, source_id)
    if source is None:
        raise NotFound(f"Knowledge source {source_id} does not exist.", details={"id": source_id})
    return source


def _check_name_free(name: str, exclude_id: str | None = None) -> None:
    query = select(KnowledgeSource.id).where(KnowledgeSource.name == name)
    if exclude_id:
        query = query.where(KnowledgeSource.id != exclude_id)
    if db.session.execute(query).first():
        raise Conflict(f"A knowledge source named '{name}' already exists.", code="duplicate_name",
                       details={"name": name})


def _check_role_may_configure(role: str, source_type: str, configuration: dict | None) -> None:
    """A source that reads the server's folders is an admin's to create or change: an operator who could
    point one at any folder could read the server's secrets through search."""
    if role != "admin" and needs_admin(source_type, configuration):
        what = "directory source" if source_type == "directory" else "git source with a local path"
        raise Forbidden(f"Only an admin may create or change a {what}: it reads folders on the server.",
                        code="insufficient_role", details={"required_role": "admin", "key_role": role})


def create_source(body: dict, *, role: str) -> KnowledgeSource:
    """Create a source as a caller of ``role`` (directory and local-path git sources need admin)."""
    _check_role_may_configure(role, body["type"], body.get("configuration"))
    _check_name_free(body["name"])
    # Everything is validated before anything is added: a 422 must not leave a half-made source in the
    # session for the next commit to persist.
    configuration = validate_configuration(body["type"], body.get("configuration") or {})
    schedule = validate_schedule(body.get("schedule"))
    index_settings = index_service.validate_settings(body.get("index") or {})
    source = KnowledgeSource(
        name=body["name"],
        description=body.get("description"),
        type=body["type"],
        configuration=configuration,
        schedule=schedule,
    )
    source.next_sync_at = next_run(source.schedule, utcnow())
    db.session.add(source)
    db.session.flush()
    index, _ = index_service.find_or_create(source, index_settings)
    index.status = "ready"  # an empty index over an empty source is complete
    db.session.commit()
    return source


def update_source(source_id: str, body: dict, *, role: str) -> KnowledgeSource:
    source = get_source(source_id)
    _check_role_may_configure(role, source.type, source.configuration)  # what it reads now
    if "configuration" in body:
        _check_role_may_configure(role, source.type, body["configuration"])  # and what it would read
    if "type" in body and body["type"] != source.type:
        raise Conflict("A source's type cannot change; create a new source instead.", code="immutable_field",
                       details={"fields": ["type"]})
    # Validate every field before changing any, so a 422 leaves the source as it was.
    if "name" in body:
        _check_name_free(body["name"], exclude_id=source.id)
    configuration = (validate_configuration(source.type, body["configuration"] or {})
                     if "configuration" in body else source.configuration)
    schedule = validate_schedule(body["schedule"]) if "schedule" in body else source.schedule
    if "name" in body:
        source.name = body["name"]
    if "description" in body:
        source.description = body["description"]
    source.configuration = configuration
    if "schedule" in body:
        source.schedule = schedule
        source.next_sync_at = next_run(source.schedule, utcnow())
    db.session.commit()
    return source


def list_sources(args: dict) -> dict:
    query = select(KnowledgeSource)
    for name in ("type", "status"):
        if args.get(name):
            query = query.where(getattr(KnowledgeSource, name) == args[name])
    return paginate(query, KnowledgeSource, args)


def delete_source(source_id: str, *, force: bool = False) -> None:
    """Delete a source with its documents, indexes, vectors, uploads and working files (409 while it syncs).

    A RAG or retrieval tool that searches it would be left waiting for an index that never comes: 409
    `in_use` naming them, unless `force`, which deletes those tools too (still 409 if agents use them)."""
    from app.services.sync import active_run
    from app.services.tools import delete_tools, tools_using_source
    from app.services.uploads import blobs_of, collect_garbage

    source = get_source(source_id)
    if active_run(source.id):
        raise Conflict("The source is syncing; cancel the sync or wait for it to end.", code="sync_in_progress")
    using = tools_using_source(source.id)
    if using and not force:
        names = ", ".join(f"{t.name} ({t.id})" for t in using)
        raise Conflict(f"Source {source.name} is searched by tools: {names}. Delete them first, or delete with "
                       "?force=true to delete them too.", code="in_use",
                       details={"tools": [{"id": t.id, "name": t.name} for t in using]})
    delete_tools(using)  # refused (409 naming the agents) if an agent calls one of them
    # Only the storage: a source whose index model can no longer embed must still be deletable.
    storages = [engine.index_storage(index) for index in index_service.indexes_of(source)]
    released = blobs_of(source.id)
    db.session.delete(source)  # its uploads' rows go with it (ON DELETE CASCADE)
    db.session.commit()
    # After the commit: the records are gone first, then their vectors, bytes and files.
    for vectors, lexical in storages:
        vectors.drop()
        lexical.drop()
    collect_garbage(released)
    shutil.rmtree(current_app.extensions["magnet.config"].data_dir / "sources" / source_id, ignore_errors=True)


def stats(source_ids: list[str]) -> dict[str, dict]:
    """Document and chunk counts and the active run of each source, in two queries for a whole page."""
    if not source_ids:
        return {}
    counts = db.session.execute(
        select(Document.source_id, func.count(), func.coalesce(func.sum(Document.chunk_count), 0))
        .where(Document.source_id.in_(source_ids))
        .group_by(Document.source_id)
    ).all()
    active = db.session.execute(
        select(SyncRun).where(SyncRun.source_id.in_(source_ids), SyncRun.status.in_(("queued", "running")))
    ).scalars().all()
    result = {sid: {"document_count": 0, "chunk_count": 0, "active_sync": None} for sid in source_ids}
    for source_id, documents, chunks in counts:
        result[source_id].update(document_count=documents, chunk_count=int(chunks))
    for run in active:
        result[run.source_id]["active_sync"] = run
    return result


def indexes(source_id: str) -> list[KnowledgeIndex]:
    return index_service.indexes_of(get_source(source_id))
