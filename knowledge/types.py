"""Data types and stage interfaces of the ingestion and retrieval engine.

Nothing in here knows about Flask or the web layer's database: the engine is usable on its own.
Stages follow one shape: settings in ``__init__``, heavy loading in ``warm_up()``, data in ``run()``
(or a small number of explicitly named methods where a stage has more than one operation).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class IngestError(Exception):
    """A per-document failure with a reason a user can act on (never a stack trace).

    ``code`` is stable and machine readable (``unsupported_type``, ``corrupt_file``, ``encrypted``,
    ``no_text``, ``too_large``, ``empty``, ``fetch_failed`` ...); ``details`` carries extra facts such as
    a page count.
    """

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class StoreUnavailable(Exception):
    """A store (the Chroma server) is down or did not answer in time: retry later; nothing is wrong with the
    request itself."""


@dataclass(frozen=True)
class Section:
    """A run of text from one place in a document: a PDF page, a Markdown section, a CSV row."""

    text: str
    page: int | None = None  # 1-based PDF page number
    heading_path: tuple[str, ...] = ()  # e.g. ("Install", "On Linux")
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedDocument:
    """What a loader extracts from one file: its text as sections, plus document-level facts."""

    sections: list[Section]
    title: str | None = None
    mime_type: str | None = None
    page_count: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Problems that did not stop the document from being indexed, one dict each:
    # {"code": "ocr_low_confidence" | "ocr_off" | ..., "message": str, "page": int | None}
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True)
class SourceItem:
    """One document as a connector sees it, before parsing.

    ``external_id`` is stable across syncs (a relative path, a URL) and is what deletions are detected by.
    ``read()`` returns the raw bytes; connectors fetch lazily so a sync never holds the corpus in memory.
    """

    external_id: str
    name: str
    read: Any  # Callable[[], bytes]
    size: int | None = None
    mime_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    """A piece of a document that is embedded and indexed as one unit."""

    id: str
    document_id: str
    source_id: str
    ordinal: int
    text: str
    token_count: int
    content_hash: str  # sha256 of text; the embedding cache key together with the model name
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    """One retrieved chunk with its scores from each retrieval stage."""

    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)  # dense, lexical, fused, rerank
    ranks: dict[str, int | None] = field(default_factory=dict)


class Loader(Protocol):
    """Turns the bytes of one file into text sections. Raises IngestError for bad input."""

    extensions: tuple[str, ...]

    def run(self, data: bytes, name: str) -> ParsedDocument: ...


class Chunker(Protocol):
    """Splits a parsed document into chunks no longer than ``chunk_size`` tokens."""

    chunk_size: int
    chunk_overlap: int

    def run(self, doc: ParsedDocument, *, document_id: str, source_id: str) -> list[Chunk]: ...


@dataclass
class ModelUsage:
    """What a model did in one call, for metering, counted in the model's own tokens (word pieces).

    ``tokens`` are what the model read for the ``inputs`` it ran on (texts, or (query, passage) pairs):
    special tokens ([CLS]/[SEP]) included, each input cut at the model's length limit as the model cuts
    it, padding excluded. Texts served from the embedding cache were not run: they are counted in
    ``cache_hits`` (and their tokens in ``cached_tokens`` when asked for), never in ``tokens``.
    ``estimated``: counted with cl100k (knowledge.tokenizer) because the model offers no count of its own.
    """

    inputs: int = 0
    tokens: int = 0
    cache_hits: int = 0
    cached_tokens: int = 0
    estimated: bool = False


class Embedder(Protocol):
    """Turns texts into unit-length vectors.

    Optional, for metering: ``count_input_tokens(texts) -> int`` (see :class:`TokenCounting`); an
    embedder without it is metered with a cl100k estimate (knowledge.embedders.usage).
    """

    name: str
    dimension: int
    max_input_tokens: int  # the model's own limit, in its word pieces

    def warm_up(self) -> None: ...

    def run(self, texts: Sequence[str]) -> list[list[float]]: ...


@runtime_checkable
class TokenCounting(Protocol):
    """An embedder that can count the word pieces its model reads (see :class:`ModelUsage`)."""

    def count_input_tokens(self, texts: Sequence[str]) -> int: ...


@runtime_checkable
class VectorCache(Protocol):
    """Embedding vectors kept by (model name, content hash), so unchanged text is never embedded twice.

    Implementations: a SQLite file (knowledge.embedders.cache, one machine) and a table in a database
    every node reaches (knowledge.embedders.sql_cache). Vectors come back as float32 numpy arrays.
    """

    def get_many(self, model: str, hashes: Iterable[str]) -> dict[str, Any]: ...

    def put_many(self, model: str, items: Iterable[tuple[str, Sequence[float]]]) -> None: ...

    def count(self, model: str | None = None) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class VectorStore(Protocol):
    """One collection of chunk vectors (one per index), cosine space."""

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None: ...

    def delete_documents(self, document_ids: Iterable[str]) -> None: ...

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None: ...

    def query(self, vector: Sequence[float], k: int, where: dict | None = None) -> list[Hit]: ...

    def count(self) -> int: ...

    def drop(self) -> None: ...


@runtime_checkable
class LexicalIndex(Protocol):
    """BM25-style keyword index over the same chunks, updated with the same sync."""

    def upsert(self, chunks: Sequence[Chunk]) -> None: ...

    def delete_documents(self, document_ids: Iterable[str]) -> None: ...

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None: ...

    def query(self, text: str, k: int, where: dict | None = None) -> list[Hit]: ...

    def count(self) -> int: ...

    def drop(self) -> None: ...


def iter_batches(items: Iterable, size: int) -> Iterator[list]:
    """Yield lists of at most ``size`` items, streaming (never materialising the whole input)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
