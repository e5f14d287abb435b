"""Chroma counts a collection by scanning it, and every search asks for the count (exact search or HNSW?):
the store must count once per version stamp, not once per search, or search grows linear in the index."""
import numpy as np

from knowledge.stores.chroma import ChromaVectorStore, make_chroma_client
from knowledge.types import Chunk


def _chunks(n: int, start: int = 0) -> tuple[list[Chunk], np.ndarray]:
    chunks = [Chunk(id=f"c{i}", document_id=f"d{i}", source_id="s", text=f"text {i}", ordinal=0, token_count=2,
                    content_hash=f"h{i}") for i in range(start, start + n)]
    vectors = np.random.default_rng(start).standard_normal((n, 8)).astype(np.float32)
    return chunks, vectors


def test_count_is_taken_once_per_version_stamp(tmp_path, monkeypatch):
    store = ChromaVectorStore(make_chroma_client(path=str(tmp_path / "chroma")), "count-test")
    store.upsert(*_chunks(5))
    counted = []
    collection_type = type(store._col())
    real_count = collection_type.count

    def spy(self):
        counted.append(1)
        return real_count(self)

    monkeypatch.setattr(collection_type, "count", spy)
    tokens = [store.version_token() for _ in range(20)]  # twenty searches, no write between them
    assert len(set(tokens)) == 1 and tokens[0][2] == 5
    assert len(counted) == 1
    store.upsert(*_chunks(3, start=5))  # a write stamps a new version: counted again, and right
    assert store.version_token()[2] == 8 and len(counted) == 2
    assert store.snapshot(max_rows=100) is not None and len(store.snapshot(max_rows=100)) == 8
    store.delete_documents(["d0"])
    assert store.version_token()[2] == 7 and store.snapshot(max_rows=6) is None
