"""One VectorStore suite with the real MiniLM model, run against Chroma embedded (PersistentClient in
tmp_path) and Chroma over HTTP (a real `chroma run` server, marked `integration`)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder
from knowledge.stores import chunk_metadata
from knowledge.stores.chroma import ChromaVectorStore, make_chroma_client
from knowledge.types import VectorStore
from tests.knowledge.store_suite import CORPUS, make_chunk, unique_name

pytestmark = pytest.mark.slow  # loads the embedding model


@pytest.fixture(scope="module")
def embedder():
    emb = SentenceTransformerEmbedder()
    emb.warm_up()
    return emb


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A real Chroma server on a free local port; its URL."""
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert exe, "the chroma CLI (installed with chromadb) was not found"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen([exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "chroma server exited"
                assert time.monotonic() < deadline, "chroma server did not start in 60 s"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(params=["persistent", pytest.param("http", marks=pytest.mark.integration)])
def client(request, tmp_path):
    if request.param == "http":
        return make_chroma_client(url=request.getfixturevalue("chroma_server"))
    return make_chroma_client(path=str(tmp_path / "chroma"))


@pytest.fixture
def store(client):
    s = ChromaVectorStore(client, unique_name("col"))
    yield s
    s.drop()


@pytest.fixture
def filled(store, embedder):
    store.upsert(CORPUS, embedder.run([c.text for c in CORPUS]))
    return store


def search(store, embedder, text, k=3, where=None):
    return store.query(embedder.run([text])[0], k=k, where=where)


def ids(hits):
    return [h.chunk_id for h in hits]


def test_implements_the_protocol_with_a_cosine_collection(filled):
    assert isinstance(filled, VectorStore)
    config = filled.client.get_collection(filled.collection_name).configuration
    assert config["hnsw"]["space"] == "cosine"
    assert config["hnsw"]["ef_search"] == 100


def test_semantically_close_sentence_ranks_first(filled, embedder):
    # The queries share no content word with the chunk they must find: the match is semantic.
    hits = search(filled, embedder, "I can't remember my login credentials, how do I get back in?")
    assert hits[0].chunk_id == "c_pw"
    assert ids(search(filled, embedder, "What happens when storage space runs out?"))[0] == "c_disk"
    assert ids(search(filled, embedder, "baking a dessert"))[0] == "c_cake"


def test_scores_are_one_minus_cosine_distance(filled, embedder):
    query = embedder.run(["how to reset a password"])[0]
    hits = filled.query(query, k=len(CORPUS))
    assert len(hits) == len(CORPUS)
    vectors = dict(zip([c.id for c in CORPUS], embedder.run([c.text for c in CORPUS]), strict=True))
    for rank, hit in enumerate(hits, start=1):
        assert hit.score == pytest.approx(float(vectors[hit.chunk_id] @ query), abs=1e-4)
        assert hit.scores == {"dense": hit.score} and hit.ranks == {"dense": rank}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert filled.query(vectors["c_bread"], k=1)[0].score == pytest.approx(1.0, abs=1e-4)


def test_hits_carry_text_and_flat_metadata(filled, embedder):
    hit = search(filled, embedder, "nightly backups to object storage", k=1)[0]
    assert hit.chunk_id == "c_runs" and hit.text == CORPUS[2].text
    assert hit.metadata == chunk_metadata(CORPUS[2])
    assert "tags" not in hit.metadata and "heading_path" not in hit.metadata
    pw = search(filled, embedder, "reset password", k=1)[0]
    assert pw.metadata["heading_path"] == "Account > Security" and pw.metadata["page"] == 1
    cake = search(filled, embedder, "chocolate cake", k=1)[0]
    assert "page" not in cake.metadata  # page None is omitted, not stored as null


def test_where_filter_is_passed_to_chroma(filled, embedder):
    hits = search(filled, embedder, "reset password", k=10, where={"document_id": "doc_recipes"})
    assert set(ids(hits)) == {"c_cake", "c_bread"}
    hits = search(filled, embedder, "reset password", k=10, where={"priority": {"$gte": 3}})
    assert ids(hits) == ["c_disk"]


def test_upsert_of_an_existing_chunk_replaces_it(filled, embedder):
    new = make_chunk("c_cake", "Kubernetes pods are rescheduled when a node fails.", "doc_recipes")
    filled.upsert([new], embedder.run([new.text]))
    assert filled.count() == len(CORPUS)
    hits = search(filled, embedder, "container orchestration node failure", k=len(CORPUS))
    assert ids(hits).count("c_cake") == 1 and hits[0].chunk_id == "c_cake"
    assert hits[0].text == new.text


def test_repeated_ids_in_one_upsert_keep_the_last(store, embedder):
    a, b = make_chunk("c1", "apples"), make_chunk("c1", "pears")
    store.upsert([a, b], embedder.run([a.text, b.text]))
    assert store.count() == 1
    assert search(store, embedder, "fruit", k=5)[0].text == "pears"


def test_delete_documents_removes_from_results_and_count(filled, embedder):
    filled.delete_documents(["doc_account", "doc_unknown"])
    assert filled.count() == len(CORPUS) - 2
    hits = search(filled, embedder, "reset password", k=len(CORPUS))
    assert not {"c_pw", "c_2fa"} & set(ids(hits))
    filled.delete_documents([])
    assert filled.count() == len(CORPUS) - 2


def test_delete_chunks(filled, embedder):
    filled.delete_chunks(["c_bread", "c_missing"])
    assert filled.count() == len(CORPUS) - 1
    assert "c_bread" not in ids(search(filled, embedder, "bread dough", k=len(CORPUS)))


def test_upserts_in_batches_below_the_clients_limit(client, embedder):
    class SmallBatches:  # the real client, reporting a tiny max batch size
        def __getattr__(self, name):
            return getattr(client, name)

        def get_max_batch_size(self):
            return 4

    store = ChromaVectorStore(SmallBatches(), unique_name("col"))
    try:
        chunks = [make_chunk(f"c{i}", f"note {i}", f"doc{i % 3}") for i in range(11)]
        store.upsert(chunks, embedder.run([c.text for c in chunks]))
        assert store.count() == 11
        store.delete_documents(["doc0", "doc1"])
        assert store.count() == 3
    finally:
        store.drop()


def test_mismatched_lengths_are_rejected(store):
    with pytest.raises(ValueError):
        store.upsert(CORPUS[:2], np.zeros((1, 384), dtype=np.float32))


def test_drop_deletes_the_collection(filled):
    filled.drop()
    assert filled.collection_name not in [c.name for c in filled.client.list_collections()]
    filled.drop()  # idempotent
    assert filled.count() == 0  # usable again: recreated empty


def test_persistent_data_survives_a_new_client(tmp_path, embedder):
    path = str(tmp_path / "persist")
    name = unique_name("col")
    ChromaVectorStore(make_chroma_client(path=path), name).upsert(CORPUS, embedder.run([c.text for c in CORPUS]))
    again = ChromaVectorStore(make_chroma_client(path=path), name)
    assert again.count() == len(CORPUS)
    assert search(again, embedder, "reset password", k=1)[0].chunk_id == "c_pw"


@pytest.mark.parametrize(
    ("path", "url"),
    [(None, None), ("/tmp/x", "http://localhost:8000"), (None, "ftp://host"), (None, "http://")],
)
def test_make_chroma_client_rejects_bad_arguments(path, url):
    with pytest.raises(ValueError):
        make_chroma_client(path=path, url=url)
