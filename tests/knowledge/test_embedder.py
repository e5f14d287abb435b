"""The local MiniLM embedder (real model, offline) and the persistent embedding cache."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from knowledge.embedders.cache import CachedEmbedder, EmbeddingCache, content_hash
from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder, default_model_path

pytestmark = pytest.mark.slow  # loads the embedding model

SENTENCES = [
    "The cat sits on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue grew by twelve percent.",
    "Stock prices fell sharply after the earnings report.",
]


@pytest.fixture(scope="module")
def embedder():
    emb = SentenceTransformerEmbedder()
    emb.warm_up()
    return emb


class CountingEmbedder:
    """The real embedder, recording every text it is asked to embed."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.calls: list[list[str]] = []

    @property
    def dimension(self):
        return self.inner.dimension

    def warm_up(self):
        self.inner.warm_up()

    def run(self, texts):
        self.calls.append(list(texts))
        return self.inner.run(texts)

    @property
    def embedded(self) -> int:
        return sum(len(c) for c in self.calls)


def test_default_model_is_the_bundled_minilm():
    path = default_model_path()
    assert os.path.isfile(os.path.join(path, "config.json"))
    assert os.path.isfile(os.path.join(path, "model.safetensors"))


def test_model_facts(embedder):
    assert embedder.name == "all-MiniLM-L6-v2"
    assert embedder.dimension == 384
    assert embedder.max_input_tokens == 256
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_vectors_are_unit_length_float32(embedder):
    vectors = embedder.run(SENTENCES)
    assert isinstance(vectors, np.ndarray)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(embedder):
    cat, kitten, revenue, stocks = embedder.run(SENTENCES)
    assert cat @ kitten > 0.5
    assert cat @ kitten > cat @ revenue + 0.3
    assert revenue @ stocks > kitten @ stocks


def test_same_text_gives_the_same_vector_alone_or_in_a_batch(embedder):
    batch = embedder.run(SENTENCES)
    np.testing.assert_allclose(embedder.run([SENTENCES[2]])[0], batch[2], atol=1e-5)


def test_empty_input(embedder):
    assert embedder.run([]).shape == (0, 384)


def test_count_tokens_uses_word_pieces_without_truncation(embedder):
    assert embedder.count_tokens("hello world") == 4  # [CLS] hello world [SEP]
    assert embedder.count_tokens("hello world", add_special_tokens=False) == 2
    assert embedder.count_tokens("tokenization") == 4  # token ##ization + 2 specials
    long = " ".join(["hello"] * 600)
    assert embedder.count_tokens(long) == 602  # beyond both 128 (tokenizer.json) and 256 (model)
    assert embedder.count_tokens("") == 2


def test_model_is_loaded_once_per_process(embedder):
    others = [SentenceTransformerEmbedder() for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda e: e.warm_up(), others))
    assert all(o._loaded is embedder._loaded for o in others)


def test_concurrent_runs_match_sequential_ones(embedder):
    expected = embedder.run(SENTENCES)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: embedder.run(SENTENCES), range(8)))
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_missing_model_path_fails_without_network(tmp_path):
    with pytest.raises(FileNotFoundError):
        SentenceTransformerEmbedder(model_path=str(tmp_path / "nope")).warm_up()


# --- EmbeddingCache: its suite, shared with the SQL cache, is tests/knowledge/test_embedding_cache.py ---


# --- CachedEmbedder ---------------------------------------------------------------------------------


def test_unchanged_text_is_never_embedded_twice(tmp_path, embedder):
    path = tmp_path / "cache.sqlite"
    texts = [SENTENCES[0], SENTENCES[1], SENTENCES[0], SENTENCES[2]]  # one duplicate

    first_inner = CountingEmbedder(embedder)
    first = CachedEmbedder(first_inner, EmbeddingCache(path))
    v1 = first.run(texts)
    assert first_inner.calls == [[SENTENCES[0], SENTENCES[1], SENTENCES[2]]]  # deduped within the batch
    assert (first.hits, first.misses) == (0, 3)
    assert v1.shape == (4, 384) and v1.dtype == np.float32
    np.testing.assert_array_equal(v1[0], v1[2])
    np.testing.assert_allclose(v1, embedder.run(texts), atol=1e-5)

    # A later sync (new process: new cache object, same file) embeds nothing.
    second_inner = CountingEmbedder(embedder)
    second = CachedEmbedder(second_inner, EmbeddingCache(path))
    v2 = second.run(texts)
    assert second_inner.embedded == 0 and second_inner.calls == []
    assert (second.hits, second.misses) == (3, 0)
    np.testing.assert_array_equal(v1, v2)

    # Only the changed text is embedded.
    v3 = second.run([SENTENCES[0], SENTENCES[3]])
    assert second_inner.calls == [[SENTENCES[3]]]
    assert (second.hits, second.misses) == (4, 1)
    np.testing.assert_array_equal(v3[0], v1[0])


def test_cache_is_shared_by_indexes_using_the_same_model(tmp_path, embedder):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    index_a, index_b = CountingEmbedder(embedder), CountingEmbedder(embedder)
    CachedEmbedder(index_a, cache).run(SENTENCES)
    CachedEmbedder(index_b, cache).run(SENTENCES[::-1])
    assert index_a.embedded == 4 and index_b.embedded == 0


def test_precomputed_hashes_are_used_as_keys(tmp_path, embedder):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    cached = CachedEmbedder(CountingEmbedder(embedder), cache)
    cached.run(SENTENCES[:2], hashes=[content_hash(s) for s in SENTENCES[:2]])
    assert set(cache.get_many(embedder.name, [content_hash(SENTENCES[0])])) == {content_hash(SENTENCES[0])}
    with pytest.raises(ValueError):
        cached.run(SENTENCES[:2], hashes=["only-one"])
    assert cached.run([]).shape == (0, 384)
    cached.reset_stats()
    assert (cached.hits, cached.misses) == (0, 0)
