"""SciFact (BEIR) benchmark of Magnet's retrieval engine: quality (nDCG@10) and query latency.

    .venv/bin/python bench/retrieval.py --scifact /work/shared/datasets/scifact [--split test] [--tune]
        [--database sqlite|postgresql|both] [--postgres-url URL]

The corpus goes through Magnet's own ingestion path: one source item per abstract (text = title + " " +
text), the real token chunker, ``IndexWriter`` with a ``CachedEmbedder`` (all-MiniLM-L6-v2) whose
``EmbeddingCache`` lives in ``--workdir``, a persistent Chroma collection and the lexical index of the
chosen database: SQLite FTS5 in the same folder, or PostgreSQL (``--postgres-url``, or else the local
test server of ``scripts/start_test_postgres.sh`` with a ``magnet_bench`` database). ``both`` runs the
evaluation once per database on the same Chroma collection, so any difference is the lexical side's, and
prints the parity of every row. A later run reuses the index when the corpus and chunking are unchanged,
and the embedding cache makes a rebuild cheap. BEIR scores documents: chunk hits are aggregated to their
document by max. nDCG@10 is computed as pytrec_eval's ``ndcg_cut_10`` (linear gains, ties broken by
document id descending) and cross-checked with ranx.

``--tune`` grid-searches the fusion parameters on the TRAIN qrels (never the test ones), calibrates the
score threshold on train queries and a set of off-topic questions, and prints the chosen default.
Latency compares the engine's ``search`` (default settings, no generation) with the raw floor measured
in the same run: query embedding + Chroma query + lexical query, called directly and in sequence.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runs as a script: .venv/bin/python bench/retrieval.py ...
    sys.path.insert(0, str(ROOT))

# The chunking a new index gets in the app by default: the headline numbers are what users get.
from app.services.indexes import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE  # noqa: E402
from bench.beir_ndcg import doc_scores, ndcg_at_10, ranx_ndcg, untie  # noqa: E402
from bench.lexical_parity import (  # noqa: E402
    LEXICAL_LABEL,
    bench_postgres_url,
    fill_lexical,
    id_style_hits,
    lexical_only,
    print_parity,
)
from bench.scifact_data import document_text, load_qrels, load_queries, read_jsonl, scifact_chunks  # noqa: E402
from knowledge.chunkers import RecursiveTokenChunker  # noqa: E402
from knowledge.chunkers.context import ContextChunker  # noqa: E402
from knowledge.embedders.cache import CachedEmbedder, EmbeddingCache  # noqa: E402
from knowledge.embedders.sentence_transformer import SentenceTransformerEmbedder  # noqa: E402
from knowledge.fusion import hybrid_scores  # noqa: E402
from knowledge.pipeline import IndexTarget, IndexWriter  # noqa: E402
from knowledge.retrieval import RetrievalSettings, Retriever  # noqa: E402
from knowledge.retrieval_settings import RECOMMENDED_SCORE_THRESHOLD  # noqa: E402
from knowledge.stores import make_lexical_index  # noqa: E402
from knowledge.stores.chroma import ChromaVectorStore, make_chroma_client  # noqa: E402
from knowledge.types import ParsedDocument, Section  # noqa: E402

PUBLISHED = [
    ("BM25 (Anserini flat)", 0.679),
    ("all-MiniLM-L6-v2 dense (exact search)", 0.645),
    ("BM25 (bm25s, k1=0.9, b=0.4, stemmer, stopwords)", 0.676),
    ("BM25 top-100 + cross-encoder ms-marco-MiniLM-L-6-v2", 0.682),
    ("BGE-base-en-v1.5 dense", 0.741),
    ("RRF of BM25 + BGE-base", 0.744),
]

# Questions with nothing to do with biomedical abstracts, for calibrating the no-answer threshold.
OFF_TOPIC_QUERIES = [
    "Who won the football world cup in 1998?", "What is the capital of Mongolia?",
    "How do I reset my router password?", "best hiking trails in the alps",
    "How long should I bake a chocolate cake?", "What time does the train to Paris leave?",
    "Which smartphone has the best camera this year?", "How do I change a flat bicycle tyre?",
    "Recommend a good fantasy novel for teenagers", "What is the plot of Hamlet?",
    "How to configure nginx as a reverse proxy", "When was the Eiffel Tower built?",
    "How many players are on a basketball team?", "Tips for learning to play the guitar",
    "What is the exchange rate of the euro to the yen?", "How do I install Python on Windows?",
    "Where can I buy cheap concert tickets?", "What is the best way to clean a cast iron pan?",
    "Who painted the Mona Lisa?", "How do I write a cover letter for a job application?",
    "What are the rules of chess castling?", "Best beaches in Portugal for surfing",
    "How do I fix a leaking kitchen faucet?", "What is the tallest mountain in Africa?",
    "How to make sourdough starter at home", "What does a product manager do?",
    "Which programming language should I learn first?", "How to knit a scarf for beginners",
    "What is the history of the Roman Colosseum?", "How do I file my income tax return?",
]

TUNE_CANDIDATE_K = (50, 100, 200)
TUNE_RRF_K = (5, 10, 20, 40, 60, 100)
TUNE_WEIGHTS = tuple(round(0.2 + 0.05 * i, 2) for i in range(14))  # 0.20 .. 0.85
TUNE_NORMALIZATIONS = ("absolute", "minmax")
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
EVAL_TOP_K = 100  # chunks per query: enough for 10 distinct documents after aggregation


# --- ingestion through Magnet's pipeline -------------------------------------------------------------------


class Bench:
    """The SciFact index in ``workdir``: built (or reused) through IndexWriter, plus a Retriever on it."""

    def __init__(self, root: Path, workdir: Path, chunk_size: int, chunk_overlap: int,
                 context_prefix: bool = False, corpus_limit: int | None = None) -> None:
        self.root = root
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.model = SentenceTransformerEmbedder()
        self.cache = EmbeddingCache(workdir / "embeddings.sqlite")
        self.embedder = CachedEmbedder(self.model, self.cache)
        self.corpus_limit = corpus_limit
        self.name = (f"scifact-c{chunk_size}-o{chunk_overlap}" + ("-ctx" if context_prefix else "")
                     + (f"-n{corpus_limit}" if corpus_limit else ""))
        self.chunker = RecursiveTokenChunker(chunk_size, chunk_overlap)
        if context_prefix:  # the title written in front of every chunk that does not start with it
            self.chunker = ContextChunker(self.chunker)
        self.vectors = ChromaVectorStore(make_chroma_client(path=str(workdir / "chroma")), self.name)
        self.use_database(f"sqlite:///{workdir / 'lexical.sqlite'}")

    def use_database(self, url: str) -> None:
        """Point the lexical side at another database (the dense side, Chroma, stays the same)."""
        from sqlalchemy import create_engine

        self.engine = create_engine(url)
        self.database = self.engine.dialect.name
        self.lexical = make_lexical_index(self.engine, self.name)

    def retriever(self, cached: bool = True) -> Retriever:
        return Retriever(self.embedder if cached else self.model, [(self.vectors, self.lexical)])

    def ensure_index(self) -> dict:
        corpus_file = self.root / "corpus.jsonl"
        digest = hashlib.sha256(corpus_file.read_bytes()).hexdigest()
        manifest_file = self.workdir / "manifest.json"
        manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
        entry = manifest.get(self.name)
        if (entry and entry.get("corpus_sha256") == digest and entry.get("model") == self.model.name
                and self.vectors.count() == entry["chunks"]):
            if self.lexical.count() != entry["chunks"]:
                self.fill_lexical(corpus_file)
            print(f"index {self.name}: reusing {entry['chunks']} chunks of {entry['documents']} documents "
                  f"(lexical index on {self.database})")
            return entry
        print(f"index {self.name}: building (embeddings cached in {self.cache.path})", flush=True)
        self.vectors.drop()
        self.lexical.drop()
        target = IndexTarget(self.name, self.chunker, self.embedder, self.vectors, self.lexical)
        writer = IndexWriter(target, batch_size=256)
        started = time.perf_counter()
        for i, doc in enumerate(read_jsonl(corpus_file), start=1):
            if self.corpus_limit and i > self.corpus_limit:
                break
            parsed = ParsedDocument(sections=[Section(text=document_text(doc))], title=doc.get("title"))
            writer.add(doc["_id"], "scifact", parsed)
            if i % 1000 == 0:
                print(f"  {i} documents, {writer.stats.chunks} chunks, {time.perf_counter() - started:.0f} s",
                      flush=True)
        writer.flush()
        stats = writer.stats
        entry = {
            "documents": stats.documents, "chunks": stats.chunks, "corpus_sha256": digest,
            "model": self.model.name, "chunk_size": self.chunker.chunk_size,
            "chunk_overlap": self.chunker.chunk_overlap, "embedded_texts": stats.embedded_texts,
            "cache_hits": stats.cache_hits, "seconds": round(time.perf_counter() - started, 1),
        }
        manifest[self.name] = entry
        manifest_file.write_text(json.dumps(manifest, indent=2))
        print(f"  built: {json.dumps(entry)}")
        return entry

    def fill_lexical(self, corpus_file: Path) -> None:
        """Write the lexical index alone (the dense side is already there)."""
        print(f"index {self.name}: writing the {self.database} lexical index", flush=True)
        fill_lexical(self.lexical, scifact_chunks(corpus_file, self.chunker))

    def chunk_report(self) -> str:
        """How the chunking fits the corpus and MiniLM's 256 word-piece input limit."""
        snap = self.vectors.snapshot()
        per_doc: dict[str, int] = defaultdict(int)
        for meta in snap.metadatas:
            per_doc[meta["document_id"]] += 1
        one = sum(1 for n in per_doc.values() if n == 1) / len(per_doc)
        sample = snap.documents[:: max(1, len(snap.documents) // 1000)]
        pieces = [self.model.count_tokens(t) for t in sample]
        fit = sum(1 for n in pieces if n <= self.model.max_input_tokens) / len(pieces)
        return (f"{len(snap)} chunks for {len(per_doc)} documents; {one:.1%} of documents are one chunk; "
                f"{fit:.1%} of chunks fit MiniLM's {self.model.max_input_tokens} word pieces "
                f"(median {int(statistics.median(pieces))}; the rest is truncated for the dense side only)")


# --- evaluation --------------------------------------------------------------------------------------------


def run_engine(retriever: Retriever, queries: dict[str, str], qids, settings: RetrievalSettings) -> dict:
    run = {}
    for qid in qids:
        hits = retriever.search(queries[qid], settings).hits
        run[qid] = doc_scores((h.metadata["document_id"], h.score) for h in hits)
    return run


def evaluate_systems(bench: Bench, queries, qrels, systems) -> list[tuple[str, float, float]]:
    retriever = bench.retriever(cached=True)
    rows = []
    for label, settings in systems:
        started = time.perf_counter()
        run = run_engine(retriever, queries, list(qrels), settings)
        own, rx = ndcg_at_10(qrels, run), ranx_ndcg(qrels, untie(run))
        if abs(own - rx) > 1e-9:
            raise SystemExit(f"nDCG@10 of {label}: own {own:.6f} but ranx {rx:.6f} on the same ranking")
        raw = ranx_ndcg(qrels, run)  # ranx with its own tie order, for information
        rows.append((label, own, raw))
        print(f"  {label}: nDCG@10 {own:.4f} (= ranx on the same ranking; ranx with its own tie order "
              f"{raw:.4f}) in {time.perf_counter() - started:.0f} s", flush=True)
    return rows


# --- tuning on train ----------------------------------------------------------------------------------------


def collect_candidates(bench: Bench, queries, qids, max_k: int) -> dict[str, list[tuple]]:
    """Per query every candidate of a hybrid search at candidate_k = max_k:
    (chunk_id, document_id, dense cosine, dense rank, lexical score, lexical rank)."""
    retriever = bench.retriever(cached=True)
    settings = RetrievalSettings(candidate_k=max_k, top_k=min(1000, 2 * max_k))
    out = {}
    for qid in qids:
        hits = retriever.search(queries[qid], settings).hits
        out[qid] = [(h.chunk_id, h.metadata["document_id"], h.scores["dense"], h.ranks["dense"],
                     h.scores["lexical"], h.ranks["lexical"]) for h in hits]
    return out


def simulate(cands: dict[str, list[tuple]], settings: RetrievalSettings) -> dict:
    """The engine's fusion (the same ``hybrid_scores``) replayed on collected candidates."""
    run = {}
    k = settings.candidate_k
    for qid, rows in cands.items():
        dense = sorted(((r[0], r[2], r[3]) for r in rows if r[3] is not None and r[3] <= k), key=lambda x: x[2])
        lexical = sorted(((r[0], r[4], r[5]) for r in rows if r[5] is not None and r[5] <= k), key=lambda x: x[2])
        union = {c for c, _, _ in dense} | {c for c, _, _ in lexical}
        dense_of = {r[0]: r[2] for r in rows if r[0] in union and r[2] is not None}
        fused = hybrid_scores([(c, s) for c, s, _ in dense], [(c, s) for c, s, _ in lexical], dense_of, settings)
        doc_of = {r[0]: r[1] for r in rows}
        run[qid] = doc_scores((doc_of[c], s) for c, s in fused.items())
    return run


def tune(bench: Bench, queries, train_qrels) -> RetrievalSettings:
    print(f"\n== tuning fusion on {len(train_qrels)} TRAIN queries ==", flush=True)
    started = time.perf_counter()
    cands = collect_candidates(bench, queries, list(train_qrels), max(TUNE_CANDIDATE_K))
    print(f"  candidates collected in {time.perf_counter() - started:.0f} s", flush=True)
    results = []
    for ck, rrf_k in itertools.product(TUNE_CANDIDATE_K, TUNE_RRF_K):
        s = RetrievalSettings(fusion="rrf", rrf_k=rrf_k, candidate_k=ck)
        results.append((ndcg_at_10(train_qrels, simulate(cands, s)), s))
    for ck, norm, w in itertools.product(TUNE_CANDIDATE_K, TUNE_NORMALIZATIONS, TUNE_WEIGHTS):
        s = RetrievalSettings(fusion="weighted", normalization=norm, dense_weight=w, candidate_k=ck)
        results.append((ndcg_at_10(train_qrels, simulate(cands, s)), s))
    results.sort(key=lambda r: -r[0])
    print("  best per family (train nDCG@10):")
    for family in ("rrf", "weighted/minmax", "weighted/absolute"):
        for score, s in results:
            if _family(s) == family:
                print(f"    {family:18} {score:.4f}  {_describe(s)}")
                break
    print("  top 10:")
    for score, s in results[:10]:
        print(f"    {score:.4f}  {_describe(s)}")
    best_score, best = results[0]
    check = ndcg_at_10(train_qrels, run_engine(bench.retriever(), queries, list(train_qrels),
                                                replace(best, top_k=EVAL_TOP_K)))
    print(f"  chosen: {_describe(best)}: train nDCG@10 {best_score:.4f} (engine re-run: {check:.4f})")
    default = RetrievalSettings()
    same = all(getattr(default, f) == getattr(best, f)
               for f in ("fusion", "normalization", "dense_weight", "rrf_k", "candidate_k"))
    print(f"  RetrievalSettings() default: {_describe(default)} -> "
          f"{'matches the tuned choice' if same else 'DIFFERS from the tuned choice: update it'}")
    calibrate_threshold(bench, queries, train_qrels)
    return best


def _family(s: RetrievalSettings) -> str:
    return "rrf" if s.fusion == "rrf" else f"weighted/{s.normalization}"


def _describe(s: RetrievalSettings) -> str:
    if s.fusion == "rrf":
        return f"rrf k={s.rrf_k} candidate_k={s.candidate_k}"
    return f"weighted {s.normalization} dense_weight={s.dense_weight} candidate_k={s.candidate_k}"


def calibrate_threshold(bench: Bench, queries, train_qrels) -> None:
    """Dense cosine of relevant documents (train) vs the best cosine an off-topic question gets."""
    snap = bench.vectors.snapshot()
    docs = np.array([m["document_id"] for m in snap.metadatas])
    qids = list(train_qrels)
    on = bench.embedder.run([queries[q] for q in qids])
    off = bench.embedder.run(OFF_TOPIC_QUERIES)
    relevant, top_on = [], []
    for q, vec in zip(qids, on, strict=True):
        sims = snap.vectors @ vec
        top_on.append(float(sims.max()))
        for doc in train_qrels[q]:
            relevant.append(float(sims[docs == doc].max()))
    top_off = [float((snap.vectors @ vec).max()) for vec in off]
    answered = [f"{q!r} ({c:.3f})" for q, c in zip(OFF_TOPIC_QUERIES, top_off, strict=True)
                if c >= RECOMMENDED_SCORE_THRESHOLD]
    rel = np.array(relevant)
    print(f"\n== score threshold (dense cosine) on TRAIN: {len(rel)} relevant (query, document) pairs, "
          f"{len(top_off)} off-topic questions ==")
    print("  relevant-document cosine percentiles 1/5/25/50: "
          + " / ".join(f"{np.percentile(rel, p):.3f}" for p in (1, 5, 25, 50)))
    print(f"  best cosine of an off-topic question: max {max(top_off):.3f}, median {statistics.median(top_off):.3f}")
    print("  threshold | relevant docs kept | train queries answered | off-topic questions answered")
    for t in THRESHOLDS:
        mark = "  <- RECOMMENDED_SCORE_THRESHOLD" if math.isclose(t, RECOMMENDED_SCORE_THRESHOLD) else ""
        print(f"  {t:9.2f} | {np.mean(rel >= t):18.1%} | {np.mean(np.array(top_on) >= t):22.1%} | "
              f"{np.mean(np.array(top_off) >= t):.1%}{mark}")
    print(f"  off-topic questions still answered at {RECOMMENDED_SCORE_THRESHOLD}: {', '.join(answered) or 'none'}")


# --- latency -----------------------------------------------------------------------------------------------


def latency(bench: Bench, queries: dict[str, str], qids: list[str], rounds: int = 1) -> dict:
    """p50/p95 of the engine's search vs the floor (embed + Chroma query + lexical query, in sequence),
    both with the uncached model, interleaved query by query so both see the same machine load."""
    settings = RetrievalSettings()
    engine = bench.retriever(cached=False)
    k = settings.candidate_k
    texts = [queries[q] for q in qids]

    def floor(text: str) -> None:
        vec = bench.model.run([text])[0]
        bench.vectors.query(vec, k)
        bench.lexical.query(text, k)

    for text in texts[:10]:  # warm-up: model, snapshot, SQLite page cache
        engine.search(text, settings)
        floor(text)
    eng, flo, stages = [], [], defaultdict(list)
    for _ in range(rounds):
        for text in texts:
            t = time.perf_counter()
            result = engine.search(text, settings)
            eng.append((time.perf_counter() - t) * 1000)
            for stage, ms in result.timings_ms.items():
                stages[stage].append(ms)
            t = time.perf_counter()
            floor(text)
            flo.append((time.perf_counter() - t) * 1000)

    def pct(values, p):
        return float(np.percentile(values, p))

    return {
        "queries": len(eng), "candidate_k": k,
        "engine_p50": pct(eng, 50), "engine_p95": pct(eng, 95),
        "floor_p50": pct(flo, 50), "floor_p95": pct(flo, 95),
        "ratio_p50": pct(eng, 50) / pct(flo, 50), "ratio_p95": pct(eng, 95) / pct(flo, 95),
        "stages_p50": {stage: round(pct(v, 50), 2) for stage, v in stages.items()},
    }


def ann_recall(bench: Bench, queries: dict[str, str], qids: list[str], k: int, ef_search: int) -> float:
    """Mean recall@k of Chroma's HNSW (at ``ef_search``) against exact search: what exact search buys."""
    bench.vectors.ensure_ef_search(ef_search)
    snap = bench.vectors.snapshot()
    vectors = bench.embedder.run([queries[q] for q in qids])
    recalls = []
    for vec in vectors:
        exact = {snap.ids[i] for i in np.argsort(-(snap.vectors @ vec))[:k]}
        approx = {h.chunk_id for h in bench.vectors.query(vec, k)}
        recalls.append(len(exact & approx) / k)
    return float(np.mean(recalls))


# --- main --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scifact", type=Path, required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/")
    parser.add_argument("--split", default="test", help="qrels split to report on (default: test)")
    parser.add_argument("--tune", action="store_true", help="grid-search fusion and calibrate the threshold on TRAIN")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / ".work",
                        help="persistent folder for the embedding cache, Chroma and SQLite (default bench/.work)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help=f"chunk size in cl100k tokens (default {DEFAULT_CHUNK_SIZE}: a new index's default in "
                             "the app, so the headline is what users get)")
    parser.add_argument("--chunk-overlap", type=int, default=DEFAULT_CHUNK_OVERLAP,
                        help=f"chunk overlap in cl100k tokens (default {DEFAULT_CHUNK_OVERLAP}, the app's default)")
    parser.add_argument("--latency-queries", type=int, default=300, help="queries timed (0: skip latency)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite",
                        help="where the lexical index lives (default sqlite); both: evaluate on each and "
                             "print the parity of every row")
    parser.add_argument("--postgres-url", help="SQLAlchemy URL of the PostgreSQL database (default: the local "
                                               "test server of scripts/start_test_postgres.sh, database magnet_bench)")
    parser.add_argument("--lexical-only", action="store_true",
                        help="only the lexical rows and the ID-style questions (no embedding model, no Chroma)")
    parser.add_argument("--corpus-limit", type=int, default=None,
                        help="index only the first N abstracts; qrels are cut to them and queries left without "
                             "a relevant abstract dropped (a cheaper paired comparison, not the headline)")
    parser.add_argument("--context-prefix", action="store_true",
                        help="write the document title in front of every chunk that does not start with it "
                             "(knowledge.chunkers.context; its own index, suffix -ctx)")
    args = parser.parse_args(argv)
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if args.lexical_only:
        lexical_only(args, databases)
        return 0

    bench = Bench(args.scifact, args.workdir, args.chunk_size, args.chunk_overlap, args.context_prefix,
                  args.corpus_limit)
    bench.ensure_index()
    print(bench.chunk_report())
    queries = load_queries(args.scifact)
    results, ids = {}, {}
    titles = [doc["title"] for doc in itertools.islice(read_jsonl(args.scifact / "corpus.jsonl"), 60)]
    for database in databases:
        if database == "postgresql":
            bench.use_database(args.postgres_url or bench_postgres_url())
            bench.ensure_index()
        results[database] = evaluate(bench, queries, args, dense_checks=database == databases[0])
        ids[database] = id_style_hits(bench.engine, bench.name, titles)
        print(f"ID-style questions on {database}: hit@1, hit@5, of: {ids[database]}", flush=True)
    if len(results) == 2:
        print_parity(args.split, results, ids)
    return 0


def evaluate(bench: Bench, queries: dict[str, str], args, dense_checks: bool = True) -> list[tuple[str, float, float]]:
    """Every row of the report for the bench's current lexical database; returns the nDCG rows.
    ``dense_checks``: also measure HNSW recall (the same for every database, so measured once)."""
    print(f"\n######## lexical index on {bench.database} ########", flush=True)
    tuned = tune(bench, queries, load_qrels(args.scifact, "train")) if args.tune else None

    qrels = load_qrels(args.scifact, args.split)
    if args.corpus_limit:
        kept = {doc["_id"] for doc in itertools.islice(read_jsonl(args.scifact / "corpus.jsonl"), args.corpus_limit)}
        qrels = {q: {d: g for d, g in rel.items() if d in kept} for q, rel in qrels.items()}
        qrels = {q: rel for q, rel in qrels.items() if any(g > 0 for g in rel.values())}
    default = RetrievalSettings(top_k=EVAL_TOP_K)
    exact = bench.vectors.count() <= default.exact_search_max
    search_kind = "exact search" if exact else f"HNSW ef_search={default.ef_search}"
    print(f"\ndense search on this index: {search_kind} ({bench.vectors.count()} chunks, "
          f"exact_search_max {default.exact_search_max})")
    systems = [
        (f"dense (MiniLM, {search_kind})", replace(default, mode="dense")),
        (f"lexical ({LEXICAL_LABEL[bench.database]})", replace(default, mode="lexical")),
        ("hybrid rrf k=60, candidate_k=100", replace(default, fusion="rrf", rrf_k=60, candidate_k=100)),
        ("hybrid weighted minmax w=0.5, candidate_k=100",
         replace(default, fusion="weighted", normalization="minmax", dense_weight=0.5, candidate_k=100)),
        (f"DEFAULT hybrid {_describe(default)}", default),
        (f"DEFAULT + score_threshold={RECOMMENDED_SCORE_THRESHOLD}",
         replace(default, score_threshold=RECOMMENDED_SCORE_THRESHOLD)),
    ]
    if tuned is not None and _describe(tuned) != _describe(default):
        systems.append((f"tuned {_describe(tuned)}", replace(tuned, top_k=EVAL_TOP_K)))
    print(f"\n== nDCG@10 on the {args.split} split ({len(qrels)} queries) ==", flush=True)
    rows = evaluate_systems(bench, queries, qrels, systems)

    if dense_checks:
        default_k = RetrievalSettings().candidate_k
        recall = {k: ann_recall(bench, queries, list(qrels), k, RetrievalSettings().ef_search)
                  for k in (10, default_k)}
        print(f"\nHNSW (ef_search={RetrievalSettings().ef_search}) recall against exact search on this index: "
              + ", ".join(f"recall@{k} {r:.4f}" for k, r in recall.items()))

    lat = None
    if args.latency_queries:
        qids = [q for q in qrels if q in queries][: args.latency_queries]
        print(f"\n== latency over {len(qids)} {args.split} queries ==", flush=True)
        lat = latency(bench, queries, qids)

    print(f"\n| system | nDCG@10 ({args.split}) | ranx, own tie order |")
    print("|---|---|---|")
    for label, own, rx in rows:
        print(f"| {label} | {own:.4f} | {rx:.4f} |")
    print("| *published baselines (dataset README)* | | |")
    for label, score in PUBLISHED:
        print(f"| {label} | {score:.3f} | |")
    if lat:
        print(f"\nquery latency ({lat['queries']} queries, candidate_k={lat['candidate_k']}): "
              f"engine p50 {lat['engine_p50']:.1f} ms, p95 {lat['engine_p95']:.1f} ms; "
              f"floor p50 {lat['floor_p50']:.1f} ms, p95 {lat['floor_p95']:.1f} ms; "
              f"ratio p50 {lat['ratio_p50']:.2f}x, p95 {lat['ratio_p95']:.2f}x")
        print(f"engine stage p50 (ms): {lat['stages_p50']}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    suffix = "" if bench.database == "sqlite" else f"-{bench.database}"
    (out / f"retrieval-{args.split}-{bench.name}{suffix}.json").write_text(json.dumps(
        {"split": args.split, "rows": rows, "latency": lat, "index": bench.name, "database": bench.database},
        indent=2))
    return rows


if __name__ == "__main__":
    sys.exit(main())
