"""Semantic similarity with the real bundled MiniLM embedder (offline)."""
from __future__ import annotations

import pytest

from evaluations.metrics.answer import semantic_similarity
from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow  # loads the embedding model


@pytest.fixture(scope="module")
def embedder():
    emb = SentenceTransformerEmbedder()
    emb.warm_up()
    return emb


def test_paraphrase_beats_unrelated_and_identical_is_one(embedder):
    refs = {
        "same": "The invoice is due within thirty days.",
        "para": "A cat is sleeping on the sofa.",
        "unrelated": "A cat is sleeping on the sofa.",
        "none": "Anything.",
    }
    preds = {
        "same": "The invoice is due within thirty days.",
        "para": "A kitten naps on the couch.",
        "unrelated": "Quarterly revenue rose by four percent.",
        "none": None,
    }
    result = semantic_similarity(preds, refs, embedder)
    assert result.per_case["same"] == pytest.approx(1.0, abs=1e-5)
    assert result.per_case["para"] > 0.5 > result.per_case["unrelated"]
    assert result.per_case["none"] == 0.0
    assert all(-1.0 <= v <= 1.0 + 1e-6 for v in result.per_case.values())


def test_best_of_several_golds(embedder):
    refs = {"c": ["Quarterly revenue rose by four percent.", "A kitten naps on the couch."]}
    best = semantic_similarity({"c": "A cat is sleeping on the sofa."}, refs, embedder).per_case["c"]
    only_para = semantic_similarity({"c": "A cat is sleeping on the sofa."},
                                    {"c": "A kitten naps on the couch."}, embedder).per_case["c"]
    assert best == pytest.approx(only_para, abs=1e-6)
