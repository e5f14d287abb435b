"""Synthetic corpora for bench/scale.py: Zipf-distributed text with ID-like tokens, and the deterministic
pseudo-random unit vectors that stand in for the embedding model.

Everything is a pure function of a seed, so two runs (or two machines) build the same corpus. The text
has a realistic shape for BM25: a vocabulary of 30,000 pronounceable words drawn with Zipf's law (s=1.1,
so a few words are in every document and most are rare), a per-document topic that favours a slice of
the vocabulary, and ID-like tokens (``INC-48213``, ``sku7731x``) that occur in one document or a handful.
Vectors: a chunk's vector is its document topic's centroid plus noise, normalised; a query is a chunk's
vector plus more noise, so nearest neighbours are meaningful (uniform random vectors in 384 dimensions
are all nearly orthogonal, which no real embedding is).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

VOCABULARY = 30_000
TOPICS = 256
DIMENSION = 384  # all-MiniLM-L6-v2
DOCS_PER_FOLDER = 1_000
_SYLLABLES = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"] + ["th", "st", "qu", "sh", "ch"]
_ID_PREFIXES = ("INC", "SKU", "REQ", "ERR", "PR", "CVE")


def vocabulary(seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        n = int(rng.integers(1, 5))
        words["".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), n))] = None
    return list(words)


def documents_for(chunks: int) -> int:
    """Documents that make about ``chunks`` chunks at the default 200/30 token chunking (~2.5 per document)."""
    return max(1, round(chunks / 2.5))


def write_corpus(folder: Path, documents: int, seed: int = 11) -> list[int]:
    """``documents`` text files in folders of DOCS_PER_FOLDER; returns each document's topic."""
    words = np.array(vocabulary())
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, VOCABULARY + 1)
    base = 1.0 / ranks ** 1.1
    topics = []
    for d in range(documents):
        topic = int(rng.integers(0, TOPICS))
        topics.append(topic)
        # The topic's slice of the mid-frequency vocabulary is 40x likelier: documents of a topic share words.
        weights = base.copy()
        lo = 200 + topic * 100
        weights[lo:lo + 100] *= 40
        weights /= weights.sum()
        length = int(rng.integers(30, 240))  # words of ~3 cl100k tokens: 1-5 chunks of 200/30, 2.5 on average
        body = words[rng.choice(VOCABULARY, size=length, p=weights)].tolist()
        for _ in range(int(rng.integers(1, 4))):  # ID-like tokens, unique to the document
            prefix = _ID_PREFIXES[int(rng.integers(0, len(_ID_PREFIXES)))]
            body.insert(int(rng.integers(0, len(body))), f"{prefix}-{d:06d}{int(rng.integers(0, 10))}")
        sentences = [" ".join(body[i:i + 14]).capitalize() + "." for i in range(0, len(body), 14)]
        path = folder / f"part{d // DOCS_PER_FOLDER:04d}" / f"doc{d:07d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Document {d} on topic {topic}\n\n" + " ".join(sentences), encoding="utf-8")
    return topics


def centroids(seed: int = 13) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((TOPICS, DIMENSION)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def unit_vector(key: str, centre: np.ndarray, noise: float) -> np.ndarray:
    """``centre`` plus Gaussian noise seeded by ``key`` (a text's sha256), normalised to length 1."""
    rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
    v = centre + noise * rng.standard_normal(DIMENSION).astype(np.float32) / np.sqrt(DIMENSION)
    return (v / np.linalg.norm(v)).astype(np.float32)
