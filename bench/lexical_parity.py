"""The lexical-parity half of ``bench/retrieval.py --database``: where the PostgreSQL side lives, the
ID-style question check, and the table that compares the two databases row by row."""
from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy import text as sql_text

from bench.beir_ndcg import doc_scores, ndcg_at_10
from bench.scifact_data import load_qrels, load_queries, read_jsonl, scifact_chunks
from knowledge.chunkers import RecursiveTokenChunker
from knowledge.stores import make_lexical_index
from knowledge.types import Chunk

ROOT = Path(__file__).resolve().parent.parent
LEXICAL_LABEL = {"sqlite": "SQLite FTS5 BM25", "postgresql": "PostgreSQL postings BM25"}


def bench_postgres_url() -> str:
    """The local test PostgreSQL server (started if needed) with a ``magnet_bench`` database on it."""
    script = ROOT / "scripts" / "start_test_postgres.sh"
    base = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True).stdout.strip()
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(sql_text("SELECT 1 FROM pg_database WHERE datname = 'magnet_bench'")).first() is None:
            conn.execute(sql_text("CREATE DATABASE magnet_bench"))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/magnet_bench"


def id_style_cases(titles: list[str]) -> list[tuple[str, str, str]]:
    """60 (identifier, document text, question): tickets, releases and standards whose identifiers share
    parts with their neighbours (PRJ-0042 / PRJ-0043, v2.3.1 / v2.4.1, ISO-27001 / ISO-27002), each
    document carrying a real SciFact title as its body."""
    cases = []
    for i in range(20):
        ticket = f"PRJ-{40 + i:04d}"
        cases.append((ticket, f"Ticket {ticket}: {titles[i]}", f"What is the status of {ticket}?"))
        release = f"v{2 + i // 10}.{i % 10}.{i % 3}"
        cases.append((release, f"Release notes for {release}: {titles[20 + i]}", f"What changed in {release}?"))
        family, number = (("ISO-", 27001 + i), ("RFC ", 9110 + i), ("IEC-", 62443 + i), ("CVE-2024-", 3094 + i))[i % 4]
        standard = f"{family}{number}"
        cases.append((standard, f"Requirements of {standard}: {titles[40 + i]}", f"Which controls does {standard} require?"))
    return cases


def id_style_hits(engine, name: str, titles: list[str], index=None) -> tuple[int, int, int]:
    """(hit@1, hit@5, questions) of the ID-style questions on a fresh lexical index in ``engine``'s
    database (or on ``index``, any LexicalIndex)."""
    cases = id_style_cases(titles)
    index = index or make_lexical_index(engine, f"{name}-id-questions")
    index.drop()
    index.upsert([Chunk(id=ident, document_id=ident, source_id="ids", ordinal=0, text=text,
                        token_count=len(text.split()), content_hash=ident) for ident, text, _ in cases])
    hit1 = hit5 = 0
    for ident, _, question in cases:
        top = [h.chunk_id for h in index.query(question, k=5)]
        hit1 += top[:1] == [ident]
        hit5 += ident in top
    index.drop()
    return hit1, hit5, len(cases)


def print_parity(split: str, results: dict[str, list[tuple[str, float, float]]], ids: dict[str, tuple]) -> None:
    """The SQLite and PostgreSQL rows side by side, and the ID-style questions on each."""
    print("\n== lexical parity: the same rows on SQLite and on PostgreSQL ==")
    print(f"| system | nDCG@10 ({split}) SQLite | PostgreSQL | difference |")
    print("|---|---|---|---|")
    for (label, a, _), (_, b, _) in zip(results["sqlite"], results["postgresql"], strict=True):
        print(f"| {label.replace(LEXICAL_LABEL['sqlite'], 'BM25')} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    for database, (hit1, hit5, n) in ids.items():
        print(f"ID-style questions on {database}: hit@1 {hit1}/{n}, hit@5 {hit5}/{n}")


def fill_lexical(index, chunk_lists: Iterable[list[Chunk]]) -> None:
    """(Re)write a lexical index from scratch, 1,000 chunks per upsert."""
    started = time.perf_counter()
    index.drop()
    batch: list[Chunk] = []
    for chunks in chunk_lists:
        batch.extend(chunks)
        if len(batch) >= 1000:
            index.upsert(batch)
            batch = []
    index.upsert(batch)
    print(f"  {index.count()} chunks in {time.perf_counter() - started:.0f} s", flush=True)


def lexical_only(args, databases: list[str]) -> None:
    """``--lexical-only``: BM25 nDCG@10 (top 100 chunks per query, max per document, as the engine's
    lexical mode) and the ID-style questions on each database, then the parity table. Its own index
    name and SQLite file, so it never touches the full benchmark's index."""
    name = f"scifact-c{args.chunk_size}-o{args.chunk_overlap}-lexical-only"
    args.workdir.mkdir(parents=True, exist_ok=True)
    urls = {"sqlite": f"sqlite:///{args.workdir / 'lexical-only.sqlite'}"}
    if "postgresql" in databases:
        urls["postgresql"] = args.postgres_url or bench_postgres_url()
    corpus = args.scifact / "corpus.jsonl"
    queries, qrels = load_queries(args.scifact), load_qrels(args.scifact, args.split)
    titles = [doc["title"] for doc in itertools.islice(read_jsonl(corpus), 60)]
    results, ids = {}, {}
    for database in databases:
        engine = create_engine(urls[database])
        index = make_lexical_index(engine, name)
        if index.count() == 0:
            print(f"index {name}: writing the {database} lexical index", flush=True)
            fill_lexical(index, scifact_chunks(corpus, RecursiveTokenChunker(args.chunk_size, args.chunk_overlap)))
        started = time.perf_counter()
        run = {q: doc_scores((h.metadata["document_id"], h.score) for h in index.query(queries[q], 100))
               for q in qrels}
        seconds = time.perf_counter() - started
        score = ndcg_at_10(qrels, run)
        label = f"lexical ({LEXICAL_LABEL[database]})"
        print(f"  {label}: nDCG@10 {score:.4f} on {len(qrels)} {args.split} queries "
              f"({1000 * seconds / len(qrels):.1f} ms per query)", flush=True)
        results[database] = [(label, score, score)]
        ids[database] = id_style_hits(engine, name, titles)
        print(f"ID-style questions on {database}: hit@1, hit@5, of: {ids[database]}", flush=True)
        engine.dispose()
    if len(results) == 2:
        print_parity(args.split, results, ids)
