"""Search latency of bench/scale.py's indexes, every size in one process, interleaved query by query.

    nice -n 10 .venv/bin/python bench/scale_interleaved.py [--sizes 10k,30k] [--queries 150]

bench/scale.py times each size in its own web process, minutes apart; on a shared machine the load can
change by half between them, which swamps a 2x target. Here every query runs against every size back to
back, so all sizes see the same load and the ratios are comparable. The queries are 8 words of chunks
of the first documents, which every size's corpus holds (the corpus generator is sequential in one seed);
their vectors are the chunk's own vector plus noise, written to every size's embedding cache, so the
query embedding is a cache hit. Reuses the data dirs bench/scale.py left in bench/.work/scale/<size>.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scale import FILTER, QUERY_NOISE  # noqa: E402
from bench.scale_corpus import unit_vector  # noqa: E402

MODES = ("dense", "lexical", "hybrid", "hybrid+filter")


def open_size(data: Path):
    from sqlalchemy import create_engine

    from knowledge.embedders.cache import CachedEmbedder, EmbeddingCache
    from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder
    from knowledge.retrieval import Retriever
    from knowledge.stores import make_lexical_index
    from knowledge.stores.chroma import ChromaVectorStore, make_chroma_client

    index_id = sqlite3.connect(data / "magnet.db").execute("SELECT id FROM knowledge_indexes").fetchone()[0]
    vectors = ChromaVectorStore(make_chroma_client(path=str(data / "chroma")), f"magnet-{index_id}")
    lexical = make_lexical_index(create_engine(f"sqlite:///{data / 'magnet.db'}"), index_id)
    embedder = CachedEmbedder(SentenceTransformerEmbedder(), EmbeddingCache(data / "embedding-cache.db"))
    return Retriever(embedder, [(vectors, lexical)]), vectors, embedder


def main(argv: list[str] | None = None) -> int:
    from knowledge.embedders.cache import content_hash
    from knowledge.retrieval import RetrievalSettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,30k")
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work" / "scale")
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    opened = {s: open_size((args.workdir / s / "data").resolve()) for s in sizes}
    _, small_vectors, small_embedder = opened[sizes[0]]
    rows = small_vectors._col().get(limit=args.queries * 4, include=["documents", "embeddings"])
    rng = np.random.default_rng(3)
    queries, cache_rows = [], []
    for text, vec in list(zip(rows["documents"], rows["embeddings"], strict=True))[::4]:
        words = text.split()
        start = int(rng.integers(0, max(1, len(words) - 8)))
        query = " ".join(words[start:start + 8])
        queries.append(query)
        cache_rows.append((content_hash(query), unit_vector("query:" + query, np.asarray(vec, np.float32), QUERY_NOISE)))
    for _, _, embedder in opened.values():
        embedder.cache.put_many(embedder.name, cache_rows)
    settings = {"dense": (RetrievalSettings(mode="dense"), None), "lexical": (RetrievalSettings(mode="lexical"), None),
                "hybrid": (RetrievalSettings(), None), "hybrid+filter": (RetrievalSettings(), FILTER)}
    times: dict = {(s, m): [] for s in sizes for m in MODES}
    stages: dict = {(s, m): {} for s in sizes for m in MODES}
    for mode in MODES:
        for size in sizes:  # warm-up
            opened[size][0].search(queries[0], *settings[mode])
        for query in queries:
            for size in sizes:
                result = opened[size][0].search(query, *settings[mode])
                times[(size, mode)].append(result.timings_ms["total"] - result.timings_ms.get("embed", 0.0))
                for stage, ms in result.timings_ms.items():
                    stages[(size, mode)].setdefault(stage, []).append(ms)
    print(f"{len(queries)} queries, interleaved across {', '.join(sizes)}; ms excluding the query embedding")
    print(f"{'mode':<16}" + "".join(f"{s + ' p50':>11}{s + ' p95':>11}" for s in sizes) + "  ratio p50 / p95 (last/first)")
    for mode in MODES:
        p = {s: (np.percentile(times[(s, mode)], 50), np.percentile(times[(s, mode)], 95)) for s in sizes}
        line = f"{mode:<16}" + "".join(f"{p[s][0]:>11.1f}{p[s][1]:>11.1f}" for s in sizes)
        print(line + f"  {p[sizes[-1]][0] / p[sizes[0]][0]:.2f}x / {p[sizes[-1]][1] / p[sizes[0]][1]:.2f}x")
    print("stage p50 (ms):")
    for mode in MODES:
        for s in sizes:
            print(f"  {mode:<14} {s:>5}: " + ", ".join(f"{k} {np.percentile(v, 50):.1f}"
                                                     for k, v in stages[(s, mode)].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
