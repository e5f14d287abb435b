"""parse -> chunk -> embed -> write, batched across documents, returning what was written.

The caller (a sync) decides which documents need work and keeps its own records; this module only
turns parsed documents into chunks in every index of a source. Embedding is the expensive step, so
chunks of many small documents are embedded together in one batch, and each batch is written to the
vector store and the lexical index before the next one is built: memory stays bounded by the batch.

Replacing a document is atomic from a reader's point of view: its new chunks are written first (a
chunk id is `document_id:ordinal`, so an upsert overwrites in place), then only the chunks the new
version no longer has are deleted. Old text stays searchable until new text has replaced it.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from knowledge.embedders.usage import embed_with_usage
from knowledge.types import Chunk, Chunker, IngestError, LexicalIndex, ParsedDocument, SourceItem, VectorStore


@dataclass
class IndexTarget:
    """One index of a source: how its chunks are cut and embedded, and where they are stored."""

    name: str
    chunker: Chunker
    embedder: object  # an Embedder, usually a CachedEmbedder (run(texts, hashes=...))
    vectors: VectorStore
    lexical: LexicalIndex


@dataclass
class WrittenDocument:
    """What one document became in one index, reported when its chunks are durably written."""

    index: str
    document_id: str
    chunks: list[Chunk]
    removed_chunk_ids: list[str]


@dataclass
class WriterStats:
    """What a writer did. ``embedded_texts`` / ``embedded_tokens``: distinct chunk texts the model embedded
    (cache misses) and their tokens in the model's word pieces (see ``knowledge.types.ModelUsage``);
    ``tokens_estimated`` when some were counted with cl100k instead. ``cache_hits``: chunks not embedded."""

    documents: int = 0
    chunks: int = 0
    embed_seconds: float = 0.0
    write_seconds: float = 0.0
    embedded_texts: int = 0
    embedded_tokens: int = 0
    tokens_estimated: bool = False
    cache_hits: int = 0


@dataclass
class _Pending:
    document_id: str
    chunks: list[Chunk]
    previous_chunk_ids: set[str]


@dataclass
class IndexWriter:
    """Chunks documents into one index, embedding and writing in batches of about `batch_size` chunks."""

    target: IndexTarget
    on_written: Callable[[WrittenDocument], None] = lambda written: None
    batch_size: int = 64
    stats: WriterStats = field(default_factory=WriterStats)
    _pending: list[_Pending] = field(default_factory=list)
    _pending_chunks: int = 0

    def add(
        self, document_id: str, source_id: str, parsed: ParsedDocument, previous_chunk_ids: Iterable[str] = ()
    ) -> None:
        """Queue a document (new or changed); it is written with the next full batch or on flush()."""
        chunks = self.target.chunker.run(parsed, document_id=document_id, source_id=source_id)
        self._pending.append(_Pending(document_id, chunks, set(previous_chunk_ids)))
        self._pending_chunks += len(chunks)
        if self._pending_chunks >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Embed and write everything queued, then report each document through `on_written`."""
        if not self._pending:
            return
        pending, self._pending, self._pending_chunks = self._pending, [], 0
        chunks = [chunk for doc in pending for chunk in doc.chunks]
        if chunks:
            started = time.perf_counter()
            vectors, usage = embed_with_usage(
                self.target.embedder, [c.text for c in chunks], hashes=[c.content_hash for c in chunks]
            )
            self.stats.embed_seconds += time.perf_counter() - started
            self.stats.embedded_texts += usage.inputs
            self.stats.embedded_tokens += usage.tokens
            self.stats.tokens_estimated = self.stats.tokens_estimated or usage.estimated
            self.stats.cache_hits += len(chunks) - usage.inputs
            started = time.perf_counter()
            self.target.vectors.upsert(chunks, vectors)
            self.target.lexical.upsert(chunks)
            self.stats.write_seconds += time.perf_counter() - started
        stale = [cid for doc in pending for cid in doc.previous_chunk_ids - {c.id for c in doc.chunks}]
        if stale:
            self.target.vectors.delete_chunks(stale)
            self.target.lexical.delete_chunks(stale)
        for doc in pending:
            removed = sorted(doc.previous_chunk_ids - {c.id for c in doc.chunks})
            self.stats.documents += 1
            self.stats.chunks += len(doc.chunks)
            self.on_written(WrittenDocument(self.target.name, doc.document_id, doc.chunks, removed))

    def remove_documents(self, document_ids: Iterable[str]) -> None:
        """Delete documents gone from the source from both stores."""
        ids = list(document_ids)
        if ids:
            self.target.vectors.delete_documents(ids)
            self.target.lexical.delete_documents(ids)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_item(item: SourceItem, max_bytes: int) -> bytes:
    """Fetch a document's bytes, refusing oversized ones before and after reading."""
    if item.size is not None and item.size > max_bytes:
        raise IngestError(
            "too_large", f"{item.name} is {item.size} bytes; the limit is {max_bytes}.", size=item.size, limit=max_bytes
        )
    try:
        data = item.read()
    except IngestError:
        raise
    except OSError as exc:
        raise IngestError("fetch_failed", f"{item.name} could not be read: {exc}") from exc
    if len(data) > max_bytes:
        raise IngestError(
            "too_large", f"{item.name} is {len(data)} bytes; the limit is {max_bytes}.", size=len(data), limit=max_bytes
        )
    return data
