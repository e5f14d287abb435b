"""Query latency through the HTTP API under gunicorn, for 1 and 8 concurrent clients.

    .venv/bin/python bench/http_latency.py --scifact /work/shared/datasets/scifact --prepare [--queries 300]

`--prepare` builds the data dir from nothing with the app's own command line (reproducible from a clean
clone): it writes SciFact as one text file per document (title + "\\n\\n" + text, as bench/ingest.py does)
into WORKDIR/corpus, makes a fresh data dir WORKDIR/data (`MAGNET_DATA_DIR`), runs `magnet db upgrade` and
`magnet ingest WORKDIR/corpus --name scifact`, i.e. a directory source synced into the default index.
`--seed-cache FILE` first copies an existing embedding cache (e.g. the one bench/ingest.py leaves in
bench/.work/ingest/data/embedding-cache.db, built from the same files and chunking) into the new data dir
so the sync does not embed the corpus again; without it the sync embeds ~12k chunks (~9 min on 2 cores).
Without `--prepare` the data dir must already hold a synced SciFact source (`--data-dir`, default
WORKDIR/data; bench/.work/ingest/data, which bench/ingest.py leaves behind, works too).

It then starts `magnet serve` on that data dir (one gunicorn worker, 8 threads), creates a retrieval tool
over the source with the default settings, waits for it to be ready, warms up with 10 queries, and times
`POST /api/retrieval-tools/{id}/search` (retrieval only, no generation, top_k 10) over the first
`--queries` SciFact queries, with 1 and then 8 concurrent clients (one keep-alive connection each). It
prints client-side p50/p95, throughput, and the server's own `latency_ms.total` p50/p95 for comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
MARKER = ".magnet-bench-http"
SOURCE_NAME = "scifact"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _env(data_dir: Path) -> dict:
    return {**os.environ, "MAGNET_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}


def prepare(scifact: Path, workdir: Path, seed_cache: Path | None) -> Path:
    """A fresh data dir with a synced SciFact directory source, made with `magnet db upgrade` + `magnet ingest`."""
    from bench.ingest import write_corpus

    workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / MARKER
    if any(workdir.iterdir()) and not marker.exists():
        raise SystemExit(f"{workdir} is not empty and was not made by this benchmark; pass another --workdir")
    marker.touch()
    corpus, data_dir = workdir / "corpus", workdir / "data"
    for folder in (corpus, data_dir):
        shutil.rmtree(folder, ignore_errors=True)
    documents = write_corpus(scifact, corpus, None)
    data_dir.mkdir(parents=True)
    env = _env(data_dir)
    subprocess.run([str(BIN / "magnet"), "db", "upgrade"], env=env, check=True, capture_output=True)
    if seed_cache is not None:
        src, dst = sqlite3.connect(seed_cache), sqlite3.connect(data_dir / "embedding-cache.db")
        try:
            src.backup(dst)  # a consistent copy, WAL included
        finally:
            src.close()
            dst.close()
        print(f"prepare: embedding cache seeded from {seed_cache}")
    print(f"prepare: {documents} documents in {corpus}; `magnet ingest` into {data_dir} ...", flush=True)
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "magnet"), "ingest", str(corpus), "--name", SOURCE_NAME], env=env,
                          capture_output=True, text=True)
    summary = [line for line in done.stdout.splitlines() if line.startswith(("created source", "sync "))]
    print("\n".join(f"  {line}" for line in summary))
    if done.returncode != 0:
        raise SystemExit(f"magnet ingest failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    print(f"prepare: synced in {time.perf_counter() - started:.0f} s", flush=True)
    return data_dir


def _serve(data_dir: Path, port: int):
    env = _env(data_dir)
    subprocess.run([str(BIN / "magnet"), "db", "upgrade"], env=env, check=True, capture_output=True)
    log = open(data_dir / "bench-serve.log", "w+")  # noqa: SIM115 - the server writes to it until we stop it
    proc = subprocess.Popen([str(BIN / "magnet"), "serve", "--port", str(port), "--threads", "8"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"magnet serve exited ({proc.returncode}):\n{log.read()[-3000:]}")
        try:
            if requests.get(f"{base}/api/health", timeout=5).status_code < 500:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit("magnet serve did not answer /api/health within 180 s")
        time.sleep(0.2)
    log.seek(0)
    key = re.search(r"Admin API key: (\S+)", log.read())
    key_text = key.group(1) if key else (data_dir / "admin-key.txt").read_text().strip()
    return proc, base, key_text


def _search(session: requests.Session, url: str, key: str, query: str) -> tuple[float, float]:
    """(client ms, server latency_ms.total) of one search."""
    started = time.perf_counter()
    res = session.post(url, json={"query": query, "top_k": 10}, headers={"X-API-Key": key}, timeout=120)
    client_ms = (time.perf_counter() - started) * 1000
    res.raise_for_status()
    body = res.json()["data"]
    if not body["results"]:
        raise SystemExit(f"no results for {query!r}: is the source synced?")
    return client_ms, float(body["latency_ms"].get("total", "nan"))


def run_clients(url: str, key: str, queries: list[str], clients: int) -> tuple[list[tuple[float, float]], float]:
    local = threading.local()

    def one(query: str) -> tuple[float, float]:
        if not hasattr(local, "session"):
            local.session = requests.Session()  # one keep-alive connection per client thread
        return _search(local.session, url, key, query)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = list(pool.map(one, queries))
    return times, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scifact", type=Path, required=True, help="folder with corpus.jsonl and queries.jsonl")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work" / "http")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: WORKDIR/data")
    parser.add_argument("--prepare", action="store_true", help="build WORKDIR/data with `magnet ingest` first")
    parser.add_argument("--seed-cache", type=Path, default=None,
                        help="with --prepare: an embedding-cache.db to copy into the new data dir first")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--clients", default="1,8", help="comma-separated client counts (default 1,8)")
    parser.add_argument("--source-name", default=None, help="default: the first source")
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    if args.prepare:
        if args.data_dir is not None:
            parser.error("--prepare builds WORKDIR/data; pass --workdir instead of --data-dir")
        data_dir = prepare(args.scifact, workdir, args.seed_cache)
    else:
        data_dir = (args.data_dir or workdir / "data").resolve()
        if not (data_dir / "magnet.db").exists() and not any(data_dir.glob("*.db")):
            raise SystemExit(f"{data_dir} holds no Magnet database: run with --prepare first")

    queries = [json.loads(line)["text"] for line in (args.scifact / "queries.jsonl").open()][: args.queries]
    proc, base, key = _serve(data_dir, _free_port())
    headers = {"X-API-Key": key}
    try:
        sources = requests.get(f"{base}/api/knowledge-sources?limit=100", headers=headers, timeout=30).json()["data"]
        source = next(s for s in sources if args.source_name in (None, s["name"]))
        res = requests.post(f"{base}/api/retrieval-tools", headers=headers, timeout=60,
                            json={"name": f"bench-{int(time.time())}", "knowledge_source_id": source["id"], "top_k": 10})
        res.raise_for_status()
        tool = res.json()["data"]
        while True:
            status = requests.get(f"{base}/api/retrieval-tools/{tool['id']}", headers=headers, timeout=30
                                  ).json()["data"]["status"]
            if status["status"] != "building":
                break
            time.sleep(1)
        if status["status"] != "ready":
            raise SystemExit(f"retrieval tool is {status['status']}: {status}")
        print(f"server {base} (gunicorn, 1 worker, 8 threads); source {source['name']} "
              f"{source.get('document_count', '?')} documents, {source.get('chunk_count', '?')} chunks; "
              f"tool {tool['id']} retrieval {tool.get('retrieval')}")
        url = f"{base}/api/retrieval-tools/{tool['id']}/search"
        session = requests.Session()
        for query in queries[:10]:  # warm-up: model load, snapshot, caches
            _search(session, url, key, query)
        print(f"{'clients':>8} {'queries':>8} {'p50 ms':>8} {'p95 ms':>8} {'q/s':>7} {'server p50':>11} "
              f"{'server p95':>11}  load avg (1/5/15 min) before")
        for clients in (int(c) for c in args.clients.split(",")):
            load = _load()
            times, wall = run_clients(url, key, queries, clients)
            client = [c for c, _ in times]
            server = [s for _, s in times]
            print(f"{clients:>8} {len(times):>8} {statistics.median(client):>8.1f} "
                  f"{_percentile(client, 0.95):>8.1f} {len(times) / wall:>7.1f} {statistics.median(server):>11.1f} "
                  f"{_percentile(server, 0.95):>11.1f}  {load}", flush=True)
        print(f"load average after: {_load()}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
