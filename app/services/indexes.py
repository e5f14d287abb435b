"""Indexes: (source, embedding model, chunker, chunk size, overlap), each one Chroma collection plus a
lexical index. A sync updates every index of its source; a new index over already-synced documents is
built from their stored text and the embedding cache, without fetching or parsing anything again."""
from __future__ import annotations

import logging

from sqlalchemy import func, select, update
from sqlalchemy.orm import undefer

from app.common.queue import enqueue
from app.errors import NotFound, ServiceUnavailable, ValidationFailed
from app.extensions import db
from app.models import INDEXED_STATUSES, Document, IndexedDocument, KnowledgeIndex, KnowledgeSource, LlmModel
from app.services import engine
from app.services.llm_models import default_model, resolve_model
from app.services.usage import record_writer_embeddings
from knowledge.pipeline import IndexTarget, IndexWriter, WrittenDocument
from knowledge.types import ParsedDocument, Section

log = logging.getLogger(__name__)
DEFAULT_CHUNK_SIZE = 200
DEFAULT_CHUNK_OVERLAP = 30
CHUNKERS = ("token", "markdown")


def validate_settings(settings: dict) -> dict:
    """Fill defaults and check an index's settings; a chunk larger than the model can read is a 422."""
    model_id = settings.get("embedding_model_id")
    model = resolve_model(model_id, "embedding", "embedding_model_id") if model_id else default_model("embedding")
    if model is None:
        raise ValidationFailed("No embedding model was named and no default embedding model is configured.",
                               details={"fields": {"embedding_model_id": ["required: no default embedding model"]}})
    if not engine.can_embed(model):  # refused now, not by every sync of the index later
        raise ValidationFailed(
            f"Embedding with provider {model.provider} is not supported yet; use a local model.",
            details={"fields": {"embedding_model_id": ["only local embedding models can build an index"]}},
        )
    size = settings.get("chunk_size", DEFAULT_CHUNK_SIZE)
    overlap = settings.get("chunk_overlap", DEFAULT_CHUNK_OVERLAP)
    chunker = settings.get("chunker", "token")
    limit = engine.max_chunk_size(model)
    problems = {}
    if chunker not in CHUNKERS:
        problems["chunker"] = [f"must be one of {', '.join(CHUNKERS)}"]
    if not 16 <= size <= limit:
        problems["chunk_size"] = [
            f"must be from 16 to {limit} tokens: {model.name} reads at most {limit} tokens and would "
            f"silently truncate longer chunks"
        ]
    if not 0 <= overlap < size:
        problems["chunk_overlap"] = ["must be at least 0 and smaller than chunk_size"]
    if problems:
        raise ValidationFailed("Invalid index settings: " + "; ".join(f"{k} {v[0]}" for k, v in problems.items()),
                               details={"fields": problems, "max_chunk_size": limit})
    return {"embedding_model_id": model.id, "chunker": chunker, "chunk_size": size, "chunk_overlap": overlap}


def find_or_create(source: KnowledgeSource, settings: dict) -> tuple[KnowledgeIndex, bool]:
    """The source's index with these settings, created (not yet built) if it does not exist."""
    settings = validate_settings(settings)
    index = db.session.execute(
        select(KnowledgeIndex).filter_by(source_id=source.id, **settings)
    ).scalar_one_or_none()
    if index is not None:
        return index, False
    index = KnowledgeIndex(source_id=source.id, status="building", **settings)
    db.session.add(index)
    db.session.flush()
    return index, True


def indexes_of(source: KnowledgeSource) -> list[KnowledgeIndex]:
    """Every index of a source, oldest first; a source always has at least its default index."""
    found = db.session.execute(
        select(KnowledgeIndex).where(KnowledgeIndex.source_id == source.id).order_by(KnowledgeIndex.created_at)
    ).scalars().all()
    if not found:
        index, _ = find_or_create(source, {})
        db.session.commit()
        found = [index]
    return list(found)


def get_index(index_id: str) -> KnowledgeIndex:
    index = db.session.get(KnowledgeIndex, index_id)
    if index is None:
        raise NotFound(f"Index {index_id} does not exist.")
    return index


def target(index: KnowledgeIndex) -> IndexTarget:
    return engine.index_target(index)


def contents(indexes: list[KnowledgeIndex]) -> dict[str, dict[str, int]]:
    """What each index holds now, counted from its rows (syncs write an index directly, so a build's
    counters say nothing about it): `documents` and `chunks` it holds at their current version, and
    `expected`, the indexed documents of its source it should hold. Two grouped queries for them all."""
    if not indexes:
        return {}
    held = db.session.execute(
        select(IndexedDocument.index_id, func.count(), func.coalesce(func.sum(IndexedDocument.chunk_count), 0))
        .join(Document, Document.id == IndexedDocument.document_id)
        .where(IndexedDocument.index_id.in_([i.id for i in indexes]),
               Document.content_hash == IndexedDocument.content_hash, Document.status == "indexed")
        .group_by(IndexedDocument.index_id)
    ).all()
    expected = dict(db.session.execute(
        select(Document.source_id, func.count())
        .where(Document.source_id.in_({i.source_id for i in indexes}), Document.status == "indexed")
        .group_by(Document.source_id)
    ).all())
    counts = {index_id: (documents, int(chunks)) for index_id, documents, chunks in held}
    return {i.id: {"documents": counts.get(i.id, (0, 0))[0], "chunks": counts.get(i.id, (0, 0))[1],
                   "expected": expected.get(i.source_id, 0)} for i in indexes}


def progress(index: KnowledgeIndex) -> dict[str, int]:
    """An index's progress as the API shows it: documents held at their current version of those expected."""
    held = contents([index])[index.id]
    return {"done": held["documents"], "total": held["expected"]}


def mark_ready(index_ids: list[str]) -> None:
    db.session.execute(
        update(KnowledgeIndex).where(KnowledgeIndex.id.in_(index_ids)).values(status="ready", error=None)
    )
    db.session.commit()


def request_build(index: KnowledgeIndex) -> None:
    """Queue building an index from its source's stored documents (202 work)."""
    index.status = "building"
    db.session.commit()
    try:
        enqueue("build_index", index.id)
    except ServiceUnavailable:  # it would say "building" forever: it says why it is not
        db.session.rollback()
        index.status, index.error = "failed", "The build could not be queued: the job queue was unavailable."
        db.session.commit()
        raise


def run_build(index_id: str) -> None:
    """The background task: chunk and embed every stored document the index does not hold yet."""
    index = db.session.get(KnowledgeIndex, index_id)
    if index is None:
        return
    try:
        _build(index)
    except Exception as exc:
        log.exception("index build %s failed", index_id)
        db.session.rollback()
        index.status, index.error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
        db.session.commit()


def _build(index: KnowledgeIndex) -> None:
    index_id, source_id = index.id, index.source_id
    held = dict(db.session.execute(
        select(IndexedDocument.document_id, IndexedDocument.content_hash).where(IndexedDocument.index_id == index_id)
    ).all())
    rows = db.session.execute(
        select(Document.id, Document.content_hash).where(Document.source_id == source_id, Document.status.in_(INDEXED_STATUSES))
    ).all()
    todo = [row.id for row in rows if held.get(row.id) != row.content_hash]
    index.documents_total, index.documents_done = len(rows), len(rows) - len(todo)
    db.session.commit()

    def written(result: WrittenDocument) -> None:
        digest = db.session.execute(select(Document.content_hash).where(Document.id == result.document_id)).scalar_one()
        db.session.merge(IndexedDocument(index_id=index_id, document_id=result.document_id,
                                         content_hash=digest, chunk_count=len(result.chunks)))
        db.session.execute(update(KnowledgeIndex).where(KnowledgeIndex.id == index_id)
                           .values(documents_done=KnowledgeIndex.documents_done + 1))

    writer = IndexWriter(target(index), on_written=written)
    for document_id in todo:
        document = db.session.get(Document, document_id, options=[undefer(Document.sections)])
        parsed = stored_document(document)
        previous = db.session.get(IndexedDocument, (index_id, document_id))
        count = previous.chunk_count if previous else 0
        db.session.commit()  # nothing open while the writer embeds
        writer.add(document_id, source_id, parsed, [f"{document_id}:{n}" for n in range(count)])
        db.session.commit()
    writer.flush()
    # An index built from stored text (a new index settings, an added model) embeds like a sync does.
    record_writer_embeddings(writer.stats, entity_type="knowledge_source", entity_id=source_id,
                             model=db.session.get(LlmModel, index.embedding_model_id),
                             details={"index_build": True, "index_id": index_id})
    db.session.commit()
    mark_ready([index_id])


def stored_document(document: Document) -> ParsedDocument:
    """The parsed form of a document, rebuilt from the text stored at its last sync."""
    sections = [
        Section(text=s["text"], page=s.get("page"), heading_path=tuple(s.get("heading_path") or ()),
                metadata=s.get("metadata") or {})
        for s in document.sections or []
    ]
    return ParsedDocument(sections=sections, title=document.title, mime_type=document.mime_type,
                          page_count=document.page_count)
