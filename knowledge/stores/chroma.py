"""Chroma vector store: one collection per index, cosine space, vectors always supplied by us.

Collections are created with ``embedding_function=None``: Chroma's default function would download a
model, and Magnet embeds (and caches) vectors itself. Chroma 1.5 configures the index through
``configuration={"hnsw": {...}}``; the legacy ``metadata={"hnsw:space": ...}`` keys are only translated.

Exact search. HNSW is approximate; a small index must never lose recall to it, and for a few thousand
vectors a brute-force matrix product is faster than an HNSW query anyway. :meth:`ChromaVectorStore.snapshot`
returns every row of the collection (ids, unit vectors, texts, metadata) from a process-wide cache. Each
write through a store stamps the collection's metadata with a fresh version token, and a snapshot is
reused only while the token (one cheap ``get_collection`` call) and the count are unchanged, so writes
from another process (a sync worker) invalidate it too. The count is taken once per version stamp:
Chroma counts by scanning, which would make every search linear in the collection's size.
"""
from __future__ import annotations

import contextlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from knowledge.stores import chunk_metadata, dedupe_chunks
from knowledge.types import Chunk, Hit, StoreUnavailable, iter_batches


def make_chroma_client(path: str | None = None, url: str | None = None, timeout: float | None = None):
    """A Chroma client: embedded and persistent at ``path``, or HTTP to a server at ``url``.

    ``url`` looks like ``http://chroma:8000`` or ``https://chroma.example.com`` (port defaults to 8000
    for http, 443 for https). Telemetry is off and ``reset()`` is disallowed in both cases.

    ``timeout`` (seconds, HTTP only) bounds connecting to the server and every request to it: a server
    that is down or frozen raises :class:`StoreUnavailable` (creating the client) or an
    ``httpx.TransportError`` (later calls) instead of hanging. Chroma's own client waits forever.
    """
    import chromadb
    from chromadb.config import Settings

    if bool(path) == bool(url):
        raise ValueError("give exactly one of a Chroma path or a Chroma URL")
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if path:
        return chromadb.PersistentClient(path=str(path), settings=settings)
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a Chroma server URL: {url!r}")
    ssl = parts.scheme == "https"
    port = parts.port or (443 if ssl else 8000)

    def create():
        client = chromadb.HttpClient(host=parts.hostname, port=port, ssl=ssl, settings=settings)
        if timeout is not None:
            import httpx

            # Chroma builds its httpx session with timeout=None and offers no setting for it.
            client._server._session.timeout = httpx.Timeout(timeout)
        return client

    if timeout is None:
        return create()
    return _within(create, timeout, f"the Chroma server at {url}")


def _within(create, timeout: float, what: str):
    """create() in a thread, waited for at most ``timeout`` seconds: the client's first calls (tenant and
    database checks) run before any timeout can be set on it."""
    outcome: dict[str, Any] = {}

    def run():
        try:
            outcome["value"] = create()
        except Exception as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="chroma-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise StoreUnavailable(f"No answer from {what} within {timeout:g} s.")
    if "error" in outcome:
        raise StoreUnavailable(f"Cannot reach {what}: {outcome['error']}") from outcome["error"]
    return outcome["value"]


VERSION_KEY = "magnet:version"
# Rows kept in memory by all snapshots together (about 1.5 KiB of vector per row plus its text):
# the least recently used snapshots are dropped beyond this.
SNAPSHOT_CACHE_ROWS = 200_000


@dataclass
class Snapshot:
    """Every row of one collection at one version: what exact search runs over."""

    token: tuple
    ids: list[str]
    vectors: np.ndarray  # (n, dim) float32, unit rows
    documents: list[str]
    metadatas: list[dict[str, Any]]
    position: dict[str, int] = field(default_factory=dict)
    _masks: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.position = {cid: i for i, cid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, key: str, predicate) -> np.ndarray:
        """Boolean row mask of ``predicate(metadata)``, memoised under ``key`` (a canonical filter)."""
        with self._lock:
            cached = self._masks.get(key)
            if cached is not None:
                self._masks.move_to_end(key)
                return cached
        mask = np.fromiter((bool(predicate(m)) for m in self.metadatas), dtype=bool, count=len(self.ids))
        with self._lock:
            self._masks[key] = mask
            while len(self._masks) > 64:
                self._masks.popitem(last=False)
        return mask


class _SnapshotCache:
    """Process-wide LRU of snapshots, bounded by total rows; keyed by collection id."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._items: OrderedDict[tuple, Snapshot] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple, token: tuple) -> Snapshot | None:
        with self._lock:
            snap = self._items.get(key)
            if snap is not None and snap.token == token:
                self._items.move_to_end(key)
                return snap
            return None

    def builder_lock(self, key: tuple) -> threading.Lock:
        with self._lock:
            return self._building.setdefault(key, threading.Lock())

    def put(self, key: tuple, snap: Snapshot) -> None:
        with self._lock:
            self._items[key] = snap
            self._items.move_to_end(key)
            total = sum(len(s) for s in self._items.values())
            while total > self.max_rows and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                total -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


SNAPSHOTS = _SnapshotCache(SNAPSHOT_CACHE_ROWS)

# Chroma's count() scans the collection: linear in its size (0.9 ms at 10k rows, 11 ms at 150k, ~70 ms
# at 1M on a 2-core machine; bench/scale.py), and every search asks for it to choose exact or HNSW
# search. The version stamp changes with every write through a store, so one count per stamp suffices.
_COUNTS: OrderedDict[tuple, int] = OrderedDict()
_COUNTS_LOCK = threading.Lock()
_COUNTS_KEPT = 1024


def _count_at_version(collection, version: str | None) -> int:
    """``collection.count()``, remembered per (collection id, version stamp); a collection never written
    through a store (no stamp) is counted every time."""
    if version is None:
        return collection.count()
    key = (str(collection.id), version)
    with _COUNTS_LOCK:
        if key in _COUNTS:
            _COUNTS.move_to_end(key)
            return _COUNTS[key]
    count = collection.count()
    with _COUNTS_LOCK:
        _COUNTS[key] = count
        while len(_COUNTS) > _COUNTS_KEPT:
            _COUNTS.popitem(last=False)
    return count


class ChromaVectorStore:
    """The :class:`~knowledge.types.VectorStore` protocol on one Chroma collection.

    ``collection_name`` must satisfy Chroma's rule: 3-512 characters of ``[a-zA-Z0-9._-]``, starting and
    ending with a letter or digit. Hits carry the flat metadata of :func:`knowledge.stores.chunk_metadata`
    and ``score = 1 - cosine distance`` (1 is identical, 0 orthogonal).
    """

    def __init__(self, client, collection_name: str, ef_search: int = 100, ef_construction: int = 100) -> None:
        self.client = client
        self.collection_name = collection_name
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self._collection = None
        self._max_batch: int | None = None

    def _col(self):
        # Created lazily: constructing a store does no I/O, and drop() followed by use recreates it.
        if self._collection is None:
            self._collection = self.client.get_or_create_collection(
                self.collection_name,
                configuration={
                    "hnsw": {"space": "cosine", "ef_search": self.ef_search, "ef_construction": self.ef_construction}
                },
                embedding_function=None,
            )
        return self._collection

    def _batch_size(self) -> int:
        if self._max_batch is None:
            self._max_batch = int(self.client.get_max_batch_size())
        return self._max_batch

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Insert or replace chunks with their vectors (one row per chunk id), in batches Chroma accepts."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        chunks, vectors = dedupe_chunks(list(chunks), list(vectors))
        col = self._col()
        for batch in iter_batches(range(len(chunks)), self._batch_size()):
            col.upsert(
                ids=[chunks[i].id for i in batch],
                embeddings=np.asarray([vectors[i] for i in batch], dtype=np.float32),
                documents=[chunks[i].text for i in batch],
                metadatas=[chunk_metadata(chunks[i]) for i in batch],
            )
        self._bump_version()

    def delete_documents(self, document_ids: Iterable[str]) -> None:
        """Remove every chunk of the given documents."""
        col = self._col()
        for batch in iter_batches(dict.fromkeys(document_ids), self._batch_size()):
            col.delete(where={"document_id": {"$in": batch}})
        self._bump_version()

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        col = self._col()
        for batch in iter_batches(dict.fromkeys(chunk_ids), self._batch_size()):
            col.delete(ids=batch)
        self._bump_version()

    def query(self, vector: Sequence[float], k: int, where: dict | None = None) -> list[Hit]:
        """The ``k`` nearest chunks to ``vector``, best first, optionally restricted by a Chroma where-filter."""
        if k <= 0:
            return []
        res: dict[str, Any] = self._col().query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,
            where=where or None,  # Chroma rejects an empty filter dict
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        rows = zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True)
        for rank, (chunk_id, text, meta, distance) in enumerate(rows, start=1):
            score = 1.0 - float(distance)
            hits.append(
                Hit(chunk_id=chunk_id, text=text or "", score=score, metadata=dict(meta or {}),
                    scores={"dense": score}, ranks={"dense": rank})
            )
        return hits

    def count(self) -> int:
        """Number of chunks in the collection."""
        return self._col().count()

    def drop(self) -> None:
        """Delete the collection and everything in it (a no-op if it does not exist)."""
        from chromadb.errors import NotFoundError

        with contextlib.suppress(NotFoundError):
            self.client.delete_collection(self.collection_name)
        self._collection = None

    # --- beyond the VectorStore protocol: what the retriever uses for exact search and hit details ---

    def _bump_version(self) -> None:
        """Stamp the collection with a new version token: every process's cached snapshot goes stale."""
        col = self._col()
        meta = dict(col.metadata or {})
        meta[VERSION_KEY] = uuid.uuid4().hex
        col.modify(metadata=meta)

    def version_token(self) -> tuple:
        """What identifies the collection's current content: (collection id, version stamp, count)."""
        from chromadb.errors import NotFoundError

        try:
            current = self.client.get_collection(self.collection_name)
        except NotFoundError:  # never written to: create it empty, as every other method does
            self._collection = None
            current = self._col()
        self._collection = current  # also picks up a collection recreated by another process
        version = (current.metadata or {}).get(VERSION_KEY)
        return (str(current.id), version, _count_at_version(current, version))

    def snapshot(self, max_rows: int | None = None) -> Snapshot | None:
        """Every row of the collection, cached in memory until the collection changes (see module docs).

        ``None`` when the collection holds more than ``max_rows`` chunks (nothing is loaded then).
        """
        token = self.version_token()
        if max_rows is not None and token[2] > max_rows:
            return None
        # Keyed by the collection's UUID, so stores and clients built per request share one snapshot.
        key = (token[0],)
        snap = SNAPSHOTS.get(key, token)
        if snap is not None:
            return snap
        with SNAPSHOTS.builder_lock(key):  # one thread builds, the others wait and reuse it
            token = self.version_token()
            snap = SNAPSHOTS.get((token[0],), token)
            if snap is None:
                snap = self._load_snapshot(token)
                SNAPSHOTS.put((token[0],), snap)
        return snap

    def _load_snapshot(self, token: tuple) -> Snapshot:
        col = self._col()
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        documents: list[str] = []
        metadatas: list[dict] = []
        batch = self._batch_size()
        offset = 0
        while True:
            res = col.get(include=["embeddings", "documents", "metadatas"], limit=batch, offset=offset)
            if not res["ids"]:
                break
            ids.extend(res["ids"])
            vectors.append(np.asarray(res["embeddings"], dtype=np.float32))
            documents.extend(d or "" for d in res["documents"])
            metadatas.extend(dict(m or {}) for m in res["metadatas"])
            offset += len(res["ids"])
            if len(res["ids"]) < batch:
                break
        matrix = np.concatenate(vectors) if vectors else np.empty((0, 0), dtype=np.float32)
        if len(matrix):
            # Chroma's cosine space compares directions: normalise so a dot product is the cosine.
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.where(norms == 0, 1, norms)
        return Snapshot(token, ids, np.ascontiguousarray(matrix, dtype=np.float32), documents, metadatas)

    def get_chunks(self, chunk_ids: Sequence[str], with_vectors: bool = False) -> dict[str, tuple]:
        """``{chunk_id: (text, metadata, vector or None)}`` for the ids that exist (unknown ids are left out)."""
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return {}
        include = ["documents", "metadatas"] + (["embeddings"] if with_vectors else [])
        found: dict[str, tuple] = {}
        for batch in iter_batches(ids, self._batch_size()):
            res = self._col().get(ids=batch, include=include)
            vecs = res["embeddings"] if with_vectors else [None] * len(res["ids"])
            for cid, doc, meta, vec in zip(res["ids"], res["documents"], res["metadatas"], vecs, strict=True):
                found[cid] = (doc or "", dict(meta or {}), None if vec is None else np.asarray(vec, dtype=np.float32))
        return found

    def ensure_ef_search(self, ef_search: int) -> None:
        """Raise the collection's HNSW ``ef_search`` to at least ``ef_search`` (never lowers it)."""
        if ef_search <= self.ef_search:
            return
        col = self._col()
        current = int((col.configuration_json or {}).get("hnsw", {}).get("ef_search") or 0)
        if current < ef_search:
            col.modify(configuration={"hnsw": {"ef_search": int(ef_search)}})
        self.ef_search = max(ef_search, current)
