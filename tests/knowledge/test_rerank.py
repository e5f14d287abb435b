"""The reranker stage with a tiny cross-encoder the test builds itself (no weights ship with Magnet):
a randomly initialised 2-layer BERT with a tokenizer made from a small vocab file, saved to a folder and
loaded offline through ``CrossEncoder(path)``."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine

from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder
from knowledge.rerank import CrossEncoderReranker
from knowledge.retrieval import RetrievalSettings, Retriever
from knowledge.stores.chroma import ChromaVectorStore, make_chroma_client
from knowledge.stores.lexical_sqlite import SqliteFtsIndex
from tests.knowledge.store_suite import make_chunk, unique_name

pytestmark = pytest.mark.slow  # loads the embedding model

CORPUS = [
    make_chunk("ops:0", "The nightly backup job runs at 2 AM and copies the database to object storage.", "ops"),
    make_chunk("ops:1", "Restore a backup by copying the data back from object storage.", "ops", ordinal=1),
    make_chunk("ops:2", "When the disk is full, the server stops accepting uploads.", "ops", ordinal=2),
    make_chunk("acc:0", "To reset your password, open Settings and choose Forgot password.", "acc"),
    make_chunk("kit:0", "Bake the chocolate cake for forty minutes at 180 degrees.", "kit"),
    make_chunk("kit:1", "Knead the bread dough and let it rise.", "kit", ordinal=1),
]
QUERIES = ["how do I restore the database backup from object storage", "backup"]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> str:
    """Build, save and return the folder of a tiny randomly initialised BERT cross-encoder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path = tmp_path_factory.mktemp("tiny-cross-encoder")
    words = re.findall(r"\w+", " ".join([*(c.text for c in CORPUS), *QUERIES]).lower())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=128)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=1,
    )
    torch.manual_seed(1234)
    model = BertForSequenceClassification(config)
    model.eval()
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="module")
def embedder():
    emb = SentenceTransformerEmbedder()
    emb.warm_up()
    return emb


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("rerank")
    vectors = ChromaVectorStore(make_chroma_client(path=str(base / "chroma")), unique_name("rr"))
    vectors.upsert(CORPUS, embedder.run([c.text for c in CORPUS]))
    engine = create_engine(f"sqlite:///{base / 'lex.db'}")
    lexical = SqliteFtsIndex(engine, unique_name("rr"))
    lexical.upsert(CORPUS)
    yield vectors, lexical
    engine.dispose()


def test_the_tiny_model_loads_offline_through_cross_encoder(tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(tiny_cross_encoder, local_files_only=True)
    scores = model.predict([("backup job", "the nightly backup job runs"), ("cake", "bake the chocolate cake")])
    assert len(scores) == 2 and scores[0] != scores[1]


def test_reranker_reorders_hits_and_reports_its_scores(tiny_cross_encoder, embedder, index):
    query = QUERIES[0]
    plain = Retriever(embedder, [index]).search(query, RetrievalSettings(top_k=6))
    reranker = CrossEncoderReranker(tiny_cross_encoder)
    result = Retriever(embedder, [index], reranker=reranker).search(query, RetrievalSettings(top_k=6))

    hits = result.hits
    assert {h.chunk_id for h in hits} == {h.chunk_id for h in plain.hits}  # same candidates, new order
    expected = dict(zip([h.chunk_id for h in hits], reranker.run(query, [h.text for h in hits]), strict=True))
    for rank, hit in enumerate(hits, start=1):
        assert hit.scores["rerank"] == pytest.approx(expected[hit.chunk_id], abs=1e-5)
        assert hit.score == hit.scores["rerank"]
        assert hit.ranks["rerank"] == rank == hit.ranks["final"]
        assert hit.scores["fused"] is not None and hit.ranks["fused"] is not None  # earlier stages kept
        assert hit.scores["dense"] is not None
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert [h.chunk_id for h in hits] != [h.chunk_id for h in plain.hits]
    assert [h.ranks["fused"] for h in hits] != sorted(h.ranks["fused"] for h in hits)
    assert "rerank" in result.timings_ms

    off = Retriever(embedder, [index], reranker=reranker).search(query, RetrievalSettings(top_k=6, rerank=False))
    assert [h.chunk_id for h in off.hits] == [h.chunk_id for h in plain.hits]
    assert all(h.scores["rerank"] is None for h in off.hits)


def test_reranker_only_reorders_the_top_n(tiny_cross_encoder, embedder, index):
    query = QUERIES[1]
    reranker = CrossEncoderReranker(tiny_cross_encoder)
    settings = RetrievalSettings(top_k=2, rerank_top_n=3)
    result = Retriever(embedder, [index], reranker=reranker).search(query, settings)
    plain = Retriever(embedder, [index]).search(query, RetrievalSettings(top_k=6))
    top3 = {h.chunk_id for h in plain.hits[:3]}
    assert {h.chunk_id for h in result.hits} <= top3
    assert all(h.scores["rerank"] is not None for h in result.hits)


def test_missing_model_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cross-encoder"):
        CrossEncoderReranker(str(tmp_path / "nothing")).warm_up()
