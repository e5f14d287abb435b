"""One VectorCache suite, run against every implementation: the SQLite file cache, the SQL table cache on
SQLite, and the SQL table cache on PostgreSQL when MAGNET_TEST_POSTGRES_URL points at a real server (the
`postgres` parameter is deselected otherwise). Sharing is proven across threads, engines and processes."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine

from knowledge.embedders.cache import CachedEmbedder, EmbeddingCache, content_hash
from knowledge.embedders.sql_cache import SqlEmbeddingCache
from knowledge.types import VectorCache
from tests.knowledge.store_suite import POSTGRES_URL, unique_name

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["sqlite-file", "sql-sqlite", pytest.param("sql-postgresql", marks=pytest.mark.postgres)]


def open_cache(kind: str, location: str, table: str) -> VectorCache:
    """A cache object over the storage a test names; another call (or process) opens the same storage."""
    if kind == "sqlite-file":
        return EmbeddingCache(location)
    return SqlEmbeddingCache(create_engine(location), table, create=True)


@pytest.fixture(params=KINDS)
def storage(request, tmp_path):
    """(kind, location, table) of a fresh, empty cache."""
    kind = request.param
    if kind == "sql-postgresql":
        assert POSTGRES_URL, "MAGNET_TEST_POSTGRES_URL is not set: run with -m 'not postgres'"
        location = POSTGRES_URL
    else:
        location = str(tmp_path / "cache.sqlite") if kind == "sqlite-file" else f"sqlite:///{tmp_path / 'app.db'}"
    table = unique_name("emb").replace("-", "_")
    yield kind, location, table
    if kind != "sqlite-file":
        cache = open_cache(kind, location, table)
        cache.table.drop(cache.engine)
        cache.engine.dispose()


@pytest.fixture
def cache(storage):
    cache = open_cache(*storage)
    yield cache
    cache.close()


def test_it_is_a_vector_cache(cache):
    assert isinstance(cache, VectorCache)


def test_round_trips_float32_exactly_keyed_by_model(cache):
    v = np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32)
    cache.put_many("m", [("h1", v[0]), ("h2", v[1].tolist())])
    got = cache.get_many("m", ["h1", "h2", "h3"])
    assert set(got) == {"h1", "h2"}
    np.testing.assert_array_equal(got["h1"], v[0])
    np.testing.assert_array_equal(got["h2"], v[1])
    assert got["h1"].dtype == np.float32
    assert cache.get_many("other-model", ["h1"]) == {}  # keyed by model too
    assert cache.count() == 2 and cache.count("m") == 2 and cache.count("other-model") == 0
    cache.put_many("m", [])
    assert cache.get_many("m", []) == {}


def test_a_key_written_twice_is_kept_once(cache):
    cache.put_many("m", [("h", np.ones(4, dtype=np.float32))])
    cache.put_many("m", [("h", np.ones(4, dtype=np.float32)), ("h", np.ones(4, dtype=np.float32)),
                         ("k", np.zeros(4, dtype=np.float32))])
    assert cache.count("m") == 2
    np.testing.assert_array_equal(cache.get_many("m", ["h"])["h"], np.ones(4, dtype=np.float32))


def test_persists_and_handles_many_keys(storage):
    items = [(f"h{i}", np.full(4, i, dtype=np.float32)) for i in range(1500)]  # > one lookup batch
    open_cache(*storage).put_many("m", items)
    got = open_cache(*storage).get_many("m", [h for h, _ in items])  # a new object: the same storage
    assert len(got) == 1500 and got["h1499"][0] == 1499


def test_is_safe_across_threads(cache):
    errors = []

    def work(t):
        try:
            for i in range(20):
                cache.put_many("m", [(f"t{t}-{i}", np.full(8, t, dtype=np.float32))])
                assert f"t{t}-{i}" in cache.get_many("m", [f"t{t}-{i}"])
        except Exception as exc:  # collected and asserted below: threads swallow exceptions
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and cache.count("m") == 120


def test_two_writers_of_the_same_texts_in_opposite_orders_both_succeed(storage):
    """Two workers embedding one corpus at once (each through its own engine or connection)."""
    first, second = open_cache(*storage), open_cache(*storage)
    items = [(f"h{i:04d}", np.full(4, i, dtype=np.float32)) for i in range(1200)]
    errors = []

    def write(cache, rows):
        try:
            for _ in range(3):
                cache.put_many("m", rows)
        except Exception as exc:  # a deadlock or a duplicate key would land here
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(first, items)),
               threading.Thread(target=write, args=(second, items[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and first.count("m") == 1200 == second.count("m")


_OTHER_PROCESS = """
import sys
import numpy as np
from tests.knowledge.test_embedding_cache import open_cache
cache = open_cache(sys.argv[1], sys.argv[2], sys.argv[3])
cache.put_many("m", [("from-another-process", np.arange(16, dtype=np.float32))])
print(cache.count("m"))
"""


def test_a_vector_another_process_wrote_is_served_here(cache, storage):
    cache.put_many("m", [("from-this-process", np.ones(16, dtype=np.float32))])
    done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, *storage], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"  # it saw this process's vector too
    got = cache.get_many("m", ["from-another-process"])
    np.testing.assert_array_equal(got["from-another-process"], np.arange(16, dtype=np.float32))


class _CountingEmbedder:
    """The real embedder, recording every text it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.embedded = inner, inner.name, 0

    @property
    def dimension(self):
        return self.inner.dimension

    def run(self, texts):
        self.embedded += len(texts)
        return self.inner.run(texts)


@pytest.mark.slow
def test_a_text_one_worker_embedded_is_never_embedded_by_another(storage):
    from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder()
    texts = ["Refunds are paid within fourteen days.", "Parcels ship within three working days."]
    first, second = _CountingEmbedder(model), _CountingEmbedder(model)
    vectors = CachedEmbedder(first, open_cache(*storage)).run(texts)
    again = CachedEmbedder(second, open_cache(*storage)).run(texts, hashes=[content_hash(t) for t in texts])
    assert first.embedded == 2 and second.embedded == 0
    np.testing.assert_array_equal(vectors, again)
