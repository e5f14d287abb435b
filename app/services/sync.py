"""Sync runs: the background work that makes a source's indexes match it (run records: sync_runs).

Incremental by content hash: an unchanged document costs one read and one hash (an upload: no read), no
parsing or embedding. A changed document replaces its chunks in place (see knowledge.pipeline); a document
that fails keeps what it had indexed. Documents gone from the source are removed from SQL, Chroma and the
lexical index only after a completed listing, never because this node cannot see the source (sync_guards).
No transaction is held open while embedding or writing to the stores.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import select, update

from app.extensions import db
from app.models import (
    INDEXED_STATUSES,
    Document,
    IndexedDocument,
    KnowledgeSource,
    LlmModel,
    SyncRun,
    utcnow,
)
from app.services import indexes as index_service
from app.services import sync_guards
from app.services.leases import Lease
from app.services.liveness import RunHeartbeat
from app.services.sources_config import connector_for, hide_server_paths, max_file_size, ocr_mode
from app.services.sync_documents import indexed_state, reads_pixels, run_timings
from app.services.sync_runs import (  # noqa: F401 (start_sync ... cancel_sync are this module's API too)
    active_run,
    cancel_sync,
    finish_run,
    get_run,
    request_resync,
    start_sync,
)
from app.services.usage import record_writer_embeddings
from knowledge.loaders import get_loader, load_document
from knowledge.pipeline import IndexWriter, WrittenDocument, read_item, sha256_bytes
from knowledge.types import IngestError, SourceItem

log = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 1.0
MAX_ERRORS_KEPT = 1000
STAT_BATCH = 500  # remembered file stats written per transaction


# HTTP answers that mean "this page does not exist (any more)", as opposed to a fetch that failed.
GONE_HTTP_STATUSES = (404, 410)


class SyncCancelled(Exception):
    pass


class SyncLost(Exception):
    """This worker's run was reaped while it was away (frozen, cut off): its outcome is already written."""


def _gone(exc: IngestError) -> bool:
    """The source says the document is not there to read: a page that answers 404/410, or a file that is
    a symlink leading outside its source root (never read; listed as skipped with the reason)."""
    if exc.code == "outside_root":
        return True
    return exc.code == "fetch_failed" and exc.details.get("status") in GONE_HTTP_STATUSES


def run_sync(run_id: str) -> None:
    """The background task. Claims the run atomically, so a duplicate delivery does nothing."""
    lease = Lease("sync", run_id)
    if not lease.acquire():
        return  # another worker on this machine is running it
    try:
        _run_claimed(run_id)
    finally:
        lease.release()


def _run_claimed(run_id: str) -> None:
    now = utcnow()
    claimed = db.session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.status == "queued")
        .values(status="running", started_at=now, heartbeat_at=now)
    ).rowcount
    db.session.commit()
    if not claimed:
        return
    run = db.session.get(SyncRun, run_id)
    source = db.session.get(KnowledgeSource, run.source_id)
    source.status = "syncing"
    db.session.commit()
    # The loop commits once per document; expiring (and so reloading) every loaded object at each commit
    # cost a few queries per document. Only this worker writes the run's counters and its documents;
    # what others change (cancel_requested) is read with explicit queries. Restored below, and the
    # final commit then expires everything, so the end of the run reads fresh rows.
    session = db.session()
    session.expire_on_commit = False
    sync = None
    lost = False
    with RunHeartbeat(SyncRun, run_id) as heartbeat:
        try:
            sync = _SourceSync(run, source, heartbeat.lost)
            sync.execute()
        except SyncLost:
            db.session.rollback()
            lost = True
        except SyncCancelled:
            db.session.rollback()
            finish_run(run, "cancelled", "Cancelled; documents already synced keep their new version.")
        except IngestError as exc:
            db.session.rollback()
            finish_run(run, "failed", exc.message)
        except Exception as exc:  # the run must end visibly, whatever happened
            log.exception("sync %s failed", run_id)
            db.session.rollback()
            finish_run(run, "failed", f"Internal error: {type(exc).__name__}: {exc}"[:1000])
    if sync is not None:  # whatever the outcome: what was embedded was spent
        try:
            sync.record_usage()
        except Exception:  # metering must not keep the run from ending
            log.exception("sync %s: embedding usage not recorded", run_id)
    session.expire_on_commit = True
    if lost:  # the reaper wrote this run's end while the worker was away; a later sync may be running now
        db.session.commit()
        log.warning("sync %s was reaped as lost while it ran: its outcome is left as the reaper wrote it", run_id)
        return
    _update_source_after(run)


def _update_source_after(run: SyncRun, resync: bool = True) -> None:
    """Commit the run's end and the source's state in one transaction: a reader that sees the run ended
    also sees it as the source's last sync. Then start the re-sync that uploads asked for meanwhile."""
    source = db.session.get(KnowledgeSource, run.source_id)
    if source is None:
        db.session.commit()
        return
    source.status = "error" if run.status == "failed" else "idle"
    source.last_sync = run.finished_at
    source.last_sync_id = run.id
    source.last_sync_status = run.status
    # The flush writes the source row, so request_resync's flag write waits for our commit (and then
    # sees this run ended) or was committed before the read below: a request is never lost.
    db.session.flush()
    resync_requested = resync and db.session.execute(
        update(KnowledgeSource)
        .where(KnowledgeSource.id == source.id, KnowledgeSource.resync_requested.is_(True))
        .values(resync_requested=False)
    ).rowcount > 0
    db.session.commit()
    # A recovered dead run (resync=False) leaves the flag: the next sync, whoever starts it, takes it.
    if resync_requested:
        start_sync(source.id, trigger="upload")


class _SourceSync:
    """One execution of a sync run."""

    def __init__(self, run: SyncRun, source: KnowledgeSource, lost=None):
        self.run = run
        self.lost = lost  # set by the run's heartbeat when the run was reaped meanwhile
        self.run_id = run.id
        self.source = source
        self.max_bytes = max_file_size(source)
        self.ocr_mode = ocr_mode(source)
        # Seconds per stage for the run's `timings`; OCR is part of parsing and also counted on its own.
        self.timings = {"parse": 0.0, "ocr": 0.0, "ocr_pages": 0}
        self.warned: dict[str, list[dict]] = {}  # document id -> warnings, until its chunks are written
        self.indexes = index_service.indexes_of(source)
        # Plain ids: ORM objects expire at every commit and would reload on each access in the hot loop.
        self.index_ids = [index.id for index in self.indexes]
        self.model_ids = [index.embedding_model_id for index in self.indexes]
        self.source_id = source.id
        self.writers = [
            IndexWriter(index_service.target(index), on_written=self._written) for index in self.indexes
        ]
        rows = db.session.execute(
            select(Document.external_id, Document.id, Document.content_hash, Document.status, Document.error_code,
                   Document.error_message, Document.details["ocr_mode"].as_string().label("ocr_mode"),
                   Document.details["stat"].as_string().label("stat")).where(
                Document.source_id == source.id
            )
        ).all()
        self.known = {row.external_id: row for row in rows}
        states = db.session.execute(
            select(IndexedDocument.index_id, IndexedDocument.document_id, IndexedDocument.content_hash,
                   IndexedDocument.chunk_count)
            .join(Document, Document.id == IndexedDocument.document_id)
            .where(Document.source_id == source.id)
        ).all()
        self.state = {(s.index_id, s.document_id): (s.content_hash, s.chunk_count) for s in states}
        self.digests: dict[str, str] = {}  # document id -> the content hash its chunks are being written for
        self.new_stats: dict[str, str] = {}  # document id -> its file's stat, read and found unchanged
        self._unsaved_writes = False
        self._last_progress = 0.0

    def execute(self) -> None:
        if self.source.type == "file":
            sync_guards.import_local_uploads(self.source_id, self.run_id)
        connector = connector_for(self.source)
        items = connector.run()
        if self.source.type != "web":  # listings are cheap: know the total up front for progress
            items = list(items)
            self.run.documents_total = len(items)
            if not items and self.known and self.source.type in ("directory", "git"):
                raise IngestError("source_unreachable", sync_guards.listed_nothing(self.source, len(self.known)))
        seen: set[str] = set()
        for item in items:
            self._checkpoint()
            if self._sync_item(item):
                seen.add(item.external_id)
            self.run.documents_done += 1
        for writer in self.writers:
            writer.flush()
        self._commit_written()
        self._save_stats()
        self.run.timings = run_timings(self.timings, self.writers)
        self._delete_missing(seen)
        if self.source.type == "web":
            self.run.documents_total = self.run.documents_done
        index_service.mark_ready(self.index_ids)
        finish_run(self.run, "completed_with_errors" if self.run.failed else "completed", None)

    # -- one document -------------------------------------------------------------------------

    def _sync_item(self, item: SourceItem) -> bool:
        """Bring one document up to date; False when the source says it no longer exists."""
        known = self.known.get(item.external_id)
        if known is not None and self._unchanged_by_listing(item, known):
            self.run.unchanged += 1
            return True
        try:
            get_loader(item.name, item.mime_type)  # unknown types are skipped before any read
            data = read_item(item, self.max_bytes)
        except IngestError as exc:
            if _gone(exc):
                # A page that answers 404/410 was removed from the site, even if a stale link still
                # leads to it: its document is deleted with the others the listing no longer has.
                self.run.errors = self._with_error(item, known, exc, skipped=True)
                return False
            self._failed(item, known, exc, data_hash=None)
            return True
        digest = sha256_bytes(data)
        if known is not None and known.content_hash == digest:
            if known.status in ("failed", "no_text") and not self._ocr_mode_changed(known):
                # The same bytes failed before and would fail again: not parsed, but still a failure of
                # this run, counted and listed with the reason it was stored with.
                self._still_failing(item, known)
                return True
            if self._current_everywhere(known, digest):
                self._remember_stat(item, known)
                self.run.unchanged += 1
                return True
        started = time.perf_counter()
        try:
            # OCR takes a second or more per page: progress, heartbeat and cancel are checked between pages.
            parsed = load_document(data, item.name, item.mime_type, ocr=self.ocr_mode, on_page=self._checkpoint)
        except IngestError as exc:
            self._failed(item, known, exc, data_hash=digest)
            return True
        finally:
            self.timings["parse"] += time.perf_counter() - started
        ocr = parsed.metadata.get("ocr") or {}
        self.timings["ocr"] += ocr.get("seconds", 0.0)
        self.timings["ocr_pages"] += len(ocr.get("pages", ()))
        document_id = self._save_document(item, known, digest, parsed, len(data))
        self.digests[document_id] = digest
        self.warned[document_id] = parsed.warnings
        for writer, index_id in zip(self.writers, self.index_ids, strict=True):
            previous = self.state.get((index_id, document_id), (None, 0))[1]
            writer.add(document_id, self.source_id, parsed, [f"{document_id}:{n}" for n in range(previous)])
        self._commit_written()
        if known is None:
            self.run.added += 1
        else:
            self.run.updated += 1
        return True

    def _unchanged_by_listing(self, item: SourceItem, known) -> bool:
        """Whether the listing alone shows the document is as indexed, so its bytes need not be read: the
        upload store's sha256, or a file's size, times and inode exactly as when its indexed bytes were read
        (the connector's ``stat``). A re-sync of 40k unchanged files then costs a listing, not 40k reads."""
        listed = item.metadata.get("sha256")
        if listed:
            return known.content_hash == listed and self._current_everywhere(known, listed)
        stat = item.metadata.get("stat")
        return (bool(stat) and stat == known.stat and known.content_hash is not None
                and self._current_everywhere(known, known.content_hash))

    def _remember_stat(self, item: SourceItem, known) -> None:
        """A file read again and found the same (touched, copied back, checked out anew, or indexed before
        files had a ``stat``): keep its new ``stat``, so the next sync trusts the listing for it again."""
        stat = item.metadata.get("stat")
        if stat and stat != known.stat:
            self.new_stats[known.id] = stat
            if len(self.new_stats) >= STAT_BATCH:
                self._save_stats()

    def _save_stats(self) -> None:
        """Write the remembered stats, a batch per transaction, committed at once (an open write would
        lock SQLite against the index writers)."""
        if not self.new_stats:
            return
        rows = db.session.execute(select(Document.id, Document.details).where(Document.id.in_(list(self.new_stats))))
        for row in rows.all():
            db.session.execute(update(Document).where(Document.id == row.id).values(
                details={**(row.details or {}), "stat": self.new_stats[row.id]}))
        db.session.commit()
        self.new_stats = {}

    def _ocr_mode_changed(self, known) -> bool:
        return known.ocr_mode != self.ocr_mode and reads_pixels(known.external_id)

    def _current_everywhere(self, known, digest: str) -> bool:
        if self._ocr_mode_changed(known):
            return False  # OCR was switched on, off or forced since: the same bytes now read differently
        return all(self.state.get((index_id, known.id), (None, 0))[0] == digest for index_id in self.index_ids)

    def _save_document(self, item: SourceItem, known, digest: str, parsed, size: int) -> str:
        document = db.session.get(Document, known.id) if known else None
        if document is None:
            document = Document(source_id=self.source_id, external_id=item.external_id)
            db.session.add(document)
        document.name = item.name[:500]
        document.mime_type = parsed.mime_type or item.mime_type
        document.size_bytes = size
        document.content_hash = digest
        document.title = (parsed.title or "")[:1000] or None
        document.page_count = parsed.page_count
        document.sections = [
            {"text": s.text, "page": s.page, "heading_path": list(s.heading_path), "metadata": s.metadata}
            for s in parsed.sections
        ]
        document.details = {**item.metadata, **parsed.metadata, "ocr_mode": self.ocr_mode}
        if parsed.warnings:
            document.details["warnings"] = parsed.warnings
        document.error_code = document.error_message = None
        document.last_synced_at = utcnow()
        if document.status not in INDEXED_STATUSES:
            document.status = "pending"
        db.session.flush()
        document_id = document.id  # read before the commit expires it (a reload is a query per document)
        # Committed before the writer embeds: no transaction stays open across embedding and store writes.
        db.session.commit()
        return document_id

    def _written(self, written: WrittenDocument) -> None:
        """Called by a writer once a document's chunks are in both stores; committed by _commit_written.

        Plain statements, no ORM loads: the digest and whether a state row exists are known here already.
        """
        key, count = (written.index, written.document_id), len(written.chunks)
        digest = self.digests[written.document_id]
        table = IndexedDocument.__table__
        if key in self.state:
            db.session.execute(table.update().where(
                table.c.index_id == written.index, table.c.document_id == written.document_id,
            ).values(content_hash=digest, chunk_count=count))
        else:
            db.session.execute(table.insert().values(
                index_id=written.index, document_id=written.document_id, content_hash=digest, chunk_count=count))
        self.state[key] = (digest, count)
        if written.index == self.index_ids[0]:
            db.session.execute(update(Document).where(Document.id == written.document_id).values(
                chunk_count=count, **indexed_state(self.warned.pop(written.document_id, []))))
        self._unsaved_writes = True

    def _commit_written(self) -> None:
        # Only when a writer reported something: a needless commit still expires every loaded object.
        if self._unsaved_writes:
            db.session.commit()
            self._unsaved_writes = False

    def _failed(self, item: SourceItem, known, exc: IngestError, data_hash: str | None) -> None:
        if exc.code == "unsupported_type":
            self.run.errors = self._with_error(item, known, exc, skipped=True)
            return
        self.run.failed += 1
        self.run.errors = self._with_error(item, known, exc)
        document = db.session.get(Document, known.id) if known else None
        if document is None:
            document = Document(source_id=self.source_id, external_id=item.external_id, name=item.name[:500])
            db.session.add(document)
        if document.status not in INDEXED_STATUSES:
            # Never indexed: the document shows why. Indexed before: it keeps its chunks, and the error.
            document.status = "no_text" if exc.code == "no_text" else "failed"
            document.content_hash = data_hash
            document.page_count = exc.details.get("page_count", document.page_count)
        document.error_code = exc.code
        document.error_message = hide_server_paths(exc.message)
        document.details = {**(document.details or {}), "ocr_mode": self.ocr_mode}
        document.last_synced_at = utcnow()
        db.session.commit()

    def _still_failing(self, item: SourceItem, known) -> None:
        self.run.failed += 1
        code = known.error_code or ("no_text" if known.status == "no_text" else "failed")
        reason = IngestError(code, known.error_message or "It failed in an earlier sync and has not changed since.")
        self.run.errors = self._with_error(item, known, reason)

    def _with_error(self, item: SourceItem, known, exc: IngestError, skipped: bool = False) -> list:
        errors = list(self.run.errors or [])
        if len(errors) < MAX_ERRORS_KEPT:
            errors.append({
                "external_id": item.external_id,
                "document_id": known.id if known else None,
                "code": exc.code,
                "message": hide_server_paths(exc.message),
                "skipped": skipped,
            })
        return errors

    # -- the end of a sync ----------------------------------------------------------------------

    def record_usage(self) -> None:
        """One ledger row per index whose model embedded anything (cache misses), added to the session for
        the run's final commit: after all embedding, so no transaction was open during it. An index that
        embedded nothing (an unchanged re-sync, only cache hits) gets no row: a 0-token row says nothing."""
        for writer, index_id, model_id in zip(self.writers, self.index_ids, self.model_ids, strict=True):
            record_writer_embeddings(writer.stats, entity_type="knowledge_source", entity_id=self.source_id,
                                     model=db.session.get(LlmModel, model_id),
                                     details={"sync_run_id": self.run_id, "index_id": index_id})

    def _delete_missing(self, seen: set[str]) -> None:
        gone = [row.id for external_id, row in self.known.items() if external_id not in seen]
        if not gone:
            return
        if self.source.type == "file":  # its documents leave with their upload, not with a listing
            missing = [row for external_id, row in self.known.items() if external_id not in seen]
            sync_guards.keep_unlisted_uploads(self.run, missing, MAX_ERRORS_KEPT)
            return
        for writer in self.writers:
            writer.remove_documents(gone)
        for start in range(0, len(gone), 500):
            batch = gone[start:start + 500]
            db.session.execute(IndexedDocument.__table__.delete().where(IndexedDocument.document_id.in_(batch)))
            db.session.execute(Document.__table__.delete().where(Document.id.in_(batch)))
        self.run.deleted += len(gone)
        db.session.commit()

    def _checkpoint(self) -> None:
        """Every second: save progress and a heartbeat, and notice a cancel request."""
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_SECONDS:
            return
        self._last_progress = now
        if self.lost is not None and self.lost.is_set():
            raise SyncLost()
        self.run.heartbeat_at = utcnow()
        db.session.commit()
        cancel = db.session.execute(
            select(SyncRun.cancel_requested).where(SyncRun.id == self.run.id)
        ).scalar_one()
        if cancel:
            for writer in self.writers:
                writer.flush()
            self._commit_written()
            raise SyncCancelled()
