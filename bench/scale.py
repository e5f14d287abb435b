"""How every cost grows with the corpus: sync, re-sync, memory, disk, search latency, HNSW recall, lists.

    nice -n 10 .venv/bin/python bench/scale.py [--sizes 10k,100k] [--queries 200] [--workdir DIR]
        [--database-url postgresql://.../DB --chroma-server] [--results bench/results/scale-postgres.json]

``--sizes`` takes 10k, 100k and 1m (chunks; about 4k, 40k and 400k documents); 1m is opt-in (hours on a
2-core machine). For each size the script writes a synthetic corpus (bench/scale_corpus.py: Zipf
vocabulary, topics, ID-like tokens), makes a fresh data dir, creates a directory source over it and
pre-fills the embedding cache with deterministic pseudo-random unit vectors for exactly the chunk texts
the sync will cut (the source's own loader and chunker), so the sync runs for real except the model:
listing, reading, hashing, parsing, chunking, Chroma and lexical writes, SQL bookkeeping.

* **worker** (a child process): first sync and unchanged re-sync through ``start_sync`` + ``run_sync``;
  its peak RSS.
* **web** (another child process, a fresh app as gunicorn would have): the engine's ``Retriever.search``
  for dense, lexical, hybrid and hybrid with a metadata filter (``{"ordinal": 0}``), p50/p95 of the
  total minus the query embedding (a cache hit here); dense by exact search (snapshot) vs HNSW; HNSW
  recall@10 against exact top-10 (computed by the bench from the generated vectors) at the default
  ``ef_search``; ``GET .../documents`` page 1, the last page by ``page`` and the last page by ``cursor``;
  its peak RSS.
* disk per chunk: the database (the lexical tables separately, via SQLite's dbstat), Chroma's folder.

With ``--database-url`` (a PostgreSQL URL whose role may create databases) each size gets an empty
database ``magnet_scale_<size>`` on that server; with ``--chroma-server`` each size gets its own fresh
``chroma run`` on 127.0.0.1 (bench/scale_services.py), whose peak RSS is reported with the web process's.

Every figure is also printed as a ratio to the first size's figure. Results: bench/results/scale.json,
the plot bench/scale.svg (written by bench/scale_plot.py, no plotting library needed).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scale_corpus import centroids, documents_for, unit_vector, write_corpus  # noqa: E402
from bench.scale_services import ChromaServer, folder_bytes, fresh_database, postgres_disk  # noqa: E402

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
CHUNK_NOISE, QUERY_NOISE = 1.5, 0.6
FILTER = {"ordinal": 0}
MARKER = ".magnet-bench-scale"


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries that across fork and exec, so
    a spawned child would start at the bench's RSS when it forked (its corpus vectors and all)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_app(data_dir: Path, corpus: Path, database_url: str | None, chroma_url: str | None):
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.services.llm_models import ensure_builtin_models

    app = create_app(Config(data_dir=data_dir, log_level="WARNING", source_roots=[corpus],
                            database_url=database_url, chroma_url=chroma_url, chroma_timeout_seconds=120,
                            db_statement_timeout_seconds=3600))
    with app.app_context():
        upgrade()
        ensure_builtin_models()
    return app


# --- building: corpus, cache pre-fill, queries and their exact top-10 -----------------------------------


def prepare(size: str, workdir: Path, args, urls: dict) -> dict:
    """Corpus, data dir, source and a pre-filled embedding cache; the queries with exact neighbours."""
    from app.services import indexes
    from app.services.knowledge_sources import create_source
    from knowledge.embedders.cache import content_hash
    from knowledge.loaders import load_document

    corpus, data = workdir / "corpus", workdir / "data"
    for folder in (corpus, data):
        shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    documents = documents_for(SIZES[size])
    topics = write_corpus(corpus, documents)
    written = time.perf_counter() - started
    app = make_app(data, corpus, urls["database_url"], urls["chroma_url"])
    rng = np.random.default_rng(5)
    query_docs = set(rng.choice(documents, size=min(args.queries, documents), replace=False).tolist())
    centres = centroids()
    with app.app_context():
        # A directory source lists at most 100,000 files unless told otherwise (the 1m corpus has 400k).
        source = create_source({"name": f"scale-{size}", "type": "directory", "configuration": {
            "path": str(corpus), "max_files": max(100_000, documents + 1)}}, role="admin")
        target = indexes.target(indexes.indexes_of(source)[0])
        cache, model = target.embedder.cache, target.embedder.name
        queries, qvecs, batch, chunks = [], [], [], 0
        keys: list[str] = []  # chunk content hashes, in the order of the rows of ``blocks``
        blocks: list[np.ndarray] = []
        block: list[np.ndarray] = []
        for d, path in enumerate(sorted(corpus.rglob("*.txt"))):
            parsed = load_document(path.read_bytes(), path.name)
            for chunk in target.chunker.run(parsed, document_id=path.stem, source_id="bench"):
                vec = unit_vector(chunk.content_hash, centres[topics[d]], CHUNK_NOISE)
                batch.append((chunk.content_hash, vec))
                keys.append(chunk.content_hash)
                block.append(vec)
                chunks += 1
                if d in query_docs and chunk.ordinal == 0:
                    words = chunk.text.split()
                    start = int(rng.integers(0, max(1, len(words) - 8)))
                    text = " ".join(words[start:start + 8])
                    qvec = unit_vector("query:" + text, vec, QUERY_NOISE)
                    queries.append(text)
                    qvecs.append(qvec)
                    batch.append((content_hash(text), qvec))
            if len(batch) >= 2000:
                cache.put_many(model, batch)
                blocks.append(np.stack(block))
                batch, block = [], []
        if batch:
            cache.put_many(model, batch)
        if block:
            blocks.append(np.stack(block))
        source_id = source.id
    exact = exact_top10(np.stack(qvecs), blocks, keys)
    print(f"[{size}] corpus: {documents} documents, {chunks} chunks (written in {written:.0f} s); cache "
          f"pre-filled in {time.perf_counter() - started - written:.0f} s; {len(queries)} queries", flush=True)
    return {"size": size, "documents": documents, "chunks": chunks, "source_id": source_id,
            "queries": queries, "exact": exact, "data": str(data), "corpus": str(corpus)}


def exact_top10(qvecs: np.ndarray, blocks: list[np.ndarray], keys: list[str]) -> list[list[str]]:
    """Exact cosine top-10 (content hashes) of each query over every chunk vector."""
    best_s = np.full((len(qvecs), 10), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(qvecs), 10), dtype=np.int64)
    offset = 0
    for block in blocks:
        sims = qvecs @ block.T
        all_s = np.concatenate([best_s, sims], axis=1)
        all_i = np.concatenate([best_i, offset + np.arange(len(block))[None, :].repeat(len(qvecs), 0)], axis=1)
        top = np.argpartition(-all_s, 9, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
        offset += len(block)
    return [[keys[i] for i in row] for row in best_i]


# --- the worker: first sync and re-sync ---------------------------------------------------------------------


def worker(state: dict, args: dict) -> dict:
    from app.extensions import db
    from app.models import SyncRun
    from app.services.sync import run_sync, start_sync

    app = make_app(Path(state["data"]), Path(state["corpus"]), args["database_url"], args["chroma_url"])
    out = {}
    for label in ("first", "resync"):
        with app.app_context():
            run_id = start_sync(state["source_id"], trigger="bench").id
            started, cpu = time.perf_counter(), time.process_time()
            run_sync(run_id)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            run = db.session.get(SyncRun, run_id)
            out[label] = {"seconds": seconds, "cpu": cpu, "status": run.status, "added": run.added,
                          "unchanged": run.unchanged, "failed": run.failed}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# --- the web process: search, recall, lists -----------------------------------------------------------------


def web(state: dict, args: dict) -> dict:
    from app.services import api_keys, indexes
    from app.services.knowledge_sources import get_source
    from knowledge.retrieval import RetrievalSettings, Retriever

    app = make_app(Path(state["data"]), Path(state["corpus"]), args["database_url"], args["chroma_url"])
    out: dict = {"rss_start_mb": peak_rss_mb()}
    queries = state["queries"]
    with app.app_context():
        target = indexes.target(indexes.indexes_of(get_source(state["source_id"]))[0])
        retriever = Retriever(target.embedder, [(target.vectors, target.lexical)])
        default = RetrievalSettings()
        modes = {
            "dense": (RetrievalSettings(mode="dense"), None),
            "lexical": (RetrievalSettings(mode="lexical"), None),
            "hybrid": (default, None),
            "hybrid+filter": (default, FILTER),
            "dense exact": (RetrievalSettings(mode="dense", exact_search_max=10_000_000), None),
            "dense hnsw": (RetrievalSettings(mode="dense", exact_search_max=0), None),
        }
        latency = {}
        for name, (settings, where) in modes.items():
            if name == "dense exact":
                # What a web process holds with the default settings; the forced exact search below loads
                # a snapshot that the default would not load above exact_search_max.
                out["rss_default_mb"] = peak_rss_mb()
                if state["chunks"] > args["exact_max"]:
                    continue  # loading every vector of a large index is what the threshold avoids
            started = time.perf_counter()
            retriever.search(queries[0], settings, where)  # warm-up: snapshot, HNSW load, page cache
            first_ms = (time.perf_counter() - started) * 1000
            values, stages = [], {}
            for q in queries:
                result = retriever.search(q, settings, where)
                values.append(result.timings_ms["total"] - result.timings_ms.get("embed", 0.0))
                for stage, ms in result.timings_ms.items():
                    stages.setdefault(stage, []).append(ms)
            latency[name] = {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
                             "first_ms": first_ms,
                             "stages_p50": {s: float(np.percentile(v, 50)) for s, v in stages.items()}}
        out["latency"] = latency
        out["rss_after_search_mb"] = peak_rss_mb()
        target.vectors.ensure_ef_search(default.ef_search)
        qvecs = target.embedder.run(queries)
        recalls = []
        for vec, exact in zip(qvecs, state["exact"], strict=True):
            got = {h.metadata.get("content_hash") for h in target.vectors.query(vec, 10)}
            recalls.append(len(got & set(exact)) / 10)
        out["recall_at_10"] = float(np.mean(recalls))
        _, secret = api_keys.create_key("bench", "viewer")
    out["lists"] = list_timings(app, state, secret)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def list_timings(app, state: dict, secret: str, repeats: int = 5) -> dict:
    """Median ms of GET .../documents: page 1, the last page by offset, the last page by cursor."""
    client = app.test_client()
    url = f"/api/knowledge-sources/{state['source_id']}/documents"
    headers = {"X-API-Key": secret}
    limit = 20
    last_page = -(-state["documents"] // limit)

    def timed(query: str) -> tuple[float, dict]:
        times, body = [], {}
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.get(f"{url}?{query}", headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            body = response.get_json()
            assert response.status_code == 200, body
        return float(np.median(times)), body

    out = {"page 1": timed(f"limit={limit}")[0], "last page (offset)": timed(f"limit={limit}&page={last_page}")[0]}
    cursor = None
    page_1 = client.get(f"{url}?limit={limit}&order=asc", headers=headers).get_json()
    cursor = (page_1.get("pagination") or {}).get("next_cursor")
    if cursor is not None:
        # A cursor from the far end: asking in the opposite order reaches the deep page in constant time.
        deep = client.get(f"{url}?limit={limit}&page={last_page - 1}", headers=headers).get_json()
        out["last page (cursor)"] = timed(f"limit={limit}&cursor={deep['pagination']['next_cursor']}")[0]
    return out


# --- disk ------------------------------------------------------------------------------------------------


def disk(state: dict, urls: dict, chroma_folder: Path | None) -> dict:
    import sqlite3

    data = Path(state["data"])
    chroma = folder_bytes(chroma_folder or data / "chroma") if chroma_folder or not urls["chroma_url"] else None
    if urls["database_url"]:
        return {**postgres_disk(urls["database_url"]), "chroma_bytes": chroma}
    db_file = data / "magnet.db"
    conn = sqlite3.connect(db_file)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    lexical = conn.execute("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'lex%'").fetchone()[0] or 0
    conn.close()
    return {"database_bytes": db_file.stat().st_size, "lexical_bytes": lexical, "chroma_bytes": chroma}


# --- report ----------------------------------------------------------------------------------------------


def in_child(fn, *fn_args):
    """Run ``fn`` in a fresh spawned process, so its peak RSS is its own."""
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        result = pool.apply(fn, fn_args)
    except BaseException:  # interrupted: stop the child now rather than wait for its work to end
        pool.terminate()
        raise
    pool.close()  # close + join, not terminate(), which leaks the pool's semaphore
    pool.join()
    return result


def measure(size: str, args) -> dict:
    workdir = args.workdir / size
    workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / MARKER).touch()
    started = time.perf_counter()
    # Each size gets an empty database and, with --chroma-server, its own Chroma server.
    urls = {"database_url": fresh_database(args.database_url, size) if args.database_url else None,
            "chroma_url": args.chroma_url}
    server = None
    if args.chroma_server:
        shutil.rmtree(workdir / "chroma-server", ignore_errors=True)
        server = ChromaServer(workdir / "chroma-server").start()
        urls["chroma_url"] = server.url
    try:
        state = prepare(size, workdir, args, urls)
        child_args = {**urls, "exact_max": args.exact_max}
        sync = in_child(worker, state, child_args)
        print(f"[{size}] sync: {json.dumps(sync)}", flush=True)
        served = in_child(web, state, child_args)
        if server:
            served["chroma_server"] = server.memory_mb()
        print(f"[{size}] web: {json.dumps(served)}", flush=True)
        result = {"size": size, "documents": state["documents"], "chunks": state["chunks"], "sync": sync,
                  "web": served, "disk": disk(state, urls, server.path if server else None),
                  "bench_seconds": time.perf_counter() - started}
    finally:
        if server:
            server.stop()
    print(f"[{size}] done in {result['bench_seconds']:.0f} s", flush=True)
    return result


def rows(result: dict) -> list[tuple[str, float, str]]:
    """(figure, value, unit) of one size."""
    n, s, w, d = result["chunks"], result["sync"], result["web"], result["disk"]
    out = [
        ("sync s per 1k chunks", s["first"]["seconds"] / n * 1000, "s"),
        ("sync CPU s per 1k chunks", s["first"]["cpu"] / n * 1000, "s"),
        ("unchanged re-sync s per 1k documents", s["resync"]["seconds"] / result["documents"] * 1000, "s"),
        ("unchanged re-sync CPU s per 1k documents", s["resync"]["cpu"] / result["documents"] * 1000, "s"),
        ("unchanged re-sync s (whole corpus)", s["resync"]["seconds"], "s"),
        ("worker peak RSS", s["peak_rss_mb"], "MB"),
        ("web peak RSS, default settings", w.get("rss_default_mb", w["peak_rss_mb"]), "MB"),
        ("web peak RSS, with a forced exact search", w["peak_rss_mb"], "MB"),
    ]
    if "chroma_server" in w:
        out.append(("Chroma server peak RSS", w["chroma_server"]["peak_rss_mb"], "MB"))
    for key in ("database_bytes", "lexical_bytes", "chroma_bytes"):
        if d.get(key) is not None:
            out.append((f"disk per chunk: {key.removesuffix('_bytes')}", d[key] / n, "B"))
    for mode, lat in w["latency"].items():
        out.append((f"search {mode} p50", lat["p50"], "ms"))
        out.append((f"search {mode} p95", lat["p95"], "ms"))
    out.append(("HNSW recall@10 (default ef_search)", w["recall_at_10"], ""))
    for name, ms in w["lists"].items():
        out.append((f"list documents {name}", ms, "ms"))
    return out


def report(results: list[dict]) -> str:
    base = {name: value for name, value, _ in rows(results[0])}
    header = f"{'figure':<48}" + "".join(f"{r['size']:>12}{'ratio':>8}" for r in results)
    lines = [header, "-" * len(header)]
    table = [dict((name, (v, unit)) for name, v, unit in rows(r)) for r in results]
    for name, _, unit in rows(results[0]):
        line = f"{name + (f' ({unit})' if unit else ''):<48}"
        for t in table:
            value = t.get(name, (None, ""))[0]
            ratio = value / base[name] if value is not None and base[name] else None
            line += (f"{value:>12.3f}" if value is not None else f"{'-':>12}") + (
                f"{ratio:>7.2f}x" if ratio is not None else f"{'-':>8}")
        lines.append(line)
    if results[-1]["chunks"] < SIZES["1m"]:  # the 1m size not run: extrapolate the last two sizes' slope
        lines[0] += f"{'1m PROJECTED':>14}"
        lines[1] = "-" * len(lines[0])
        (n0, t0), (n1, t1) = [(r["chunks"], tab) for r, tab in zip(results[-2:], table[-2:], strict=True)]
        for i, (name, _, _) in enumerate(rows(results[0]), start=2):
            v0, v1 = t0.get(name, (None,))[0], t1.get(name, (None,))[0]
            lines[i] += f"{project(v0, v1, n0, n1):>14.3f}" if v0 and v1 else f"{'-':>14}"
    counts = "; ".join(f"{r['size']}: {r['documents']} documents, {r['chunks']} chunks, bench {r['bench_seconds']:.0f} s"
                       for r in results)
    return "\n".join(lines + ["", counts])


def project(v0: float, v1: float, n0: int, n1: int, n: int = 1_000_000) -> float:
    """``v1`` carried to ``n`` chunks along the log-log line through (n0, v0) and (n1, v1)."""
    slope = math.log(v1 / v0) / math.log(n1 / n0)
    return v1 * (n / n1) ** slope


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k", help="comma-separated of 10k, 100k, 1m (1m is opt-in)")
    parser.add_argument("--queries", type=int, default=200, help="queries per size (recall and latency)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work" / "scale")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in the data dir)")
    parser.add_argument("--chroma-url", default=None, help="a Chroma server (default: embedded Chroma)")
    parser.add_argument("--chroma-server", action="store_true",
                        help="start a fresh `chroma run` on 127.0.0.1 for each size and measure its memory")
    parser.add_argument("--results", type=Path, default=None,
                        help="where the results JSON goes (default bench/results/scale.json, or "
                             "scale-postgres.json with --database-url); the plot goes next to it as .svg")
    parser.add_argument("--report", type=Path, default=None,
                        help="print the table and write the plot of an earlier run's results JSON; measure nothing")
    parser.add_argument("--exact-max", type=int, default=200_000,
                        help="time exact dense search (a full snapshot) only up to this many chunks")
    args = parser.parse_args(argv)
    # A plain kill must still stop this run's Chroma server and child processes (``finally`` blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.report:
        results = json.loads(args.report.read_text())
        print(report(results))
        from bench.scale_plot import write_svg

        write_svg(results, rows, plot_path(args.report))
        return 0
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    for size in sizes:  # 10k, 100k, 1m; any other NNk works too (e.g. 2k for a smoke run)
        if size not in SIZES and size[:-1].isdigit() and size[-1] in "km":
            SIZES[size] = int(size[:-1]) * (1000 if size[-1] == "k" else 1_000_000)
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}: write them as 10k, 100k, 1m")
    args.workdir = args.workdir.resolve()
    if args.workdir.exists() and any(args.workdir.iterdir()) and not (args.workdir / MARKER).exists():
        parser.error(f"{args.workdir} is not empty and was not made by this benchmark")
    load = os.getloadavg()[0]
    results = [measure(size, args) for size in sizes]
    text = report(results)
    print(f"\nload average (1 min) before / after: {load:.1f} / {os.getloadavg()[0]:.1f}; "
          f"database: {'PostgreSQL' if args.database_url else 'SQLite'}, Chroma: "
          f"{'server' if args.chroma_url or args.chroma_server else 'embedded'}\n\n{text}")
    path = args.results or ROOT / "bench" / "results" / ("scale-postgres.json" if args.database_url else "scale.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    from bench.scale_plot import write_svg

    write_svg(results, rows, plot_path(path))
    return 0


def plot_path(results: Path) -> Path:
    """bench/scale.svg for bench/results/scale.json, bench/scale-postgres.svg for scale-postgres.json."""
    return ROOT / "bench" / (results.stem + ".svg")


if __name__ == "__main__":
    raise SystemExit(main())
