"""Query latency through the HTTP API under gunicorn, for 1 and 8 concurrent clients.

Needs a data dir that already holds a synced SciFact source (bench/ingest.py leaves one behind):

    .venv/bin/python bench/http_latency.py --data-dir bench/.work/ingest/data \
        --scifact ../shared/datasets/scifact [--queries 300]

It starts `magnet serve` on that data dir (one gunicorn worker, 8 threads), creates a retrieval tool over
the source, and times `POST /api/retrieval-tools/{id}/search` (retrieval only, no generation).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _serve(data_dir: Path, port: int):
    env = {**os.environ, "MAGNET_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    subprocess.run([str(BIN / "magnet"), "db", "upgrade"], env=env, check=True, capture_output=True)
    log = open(data_dir / "bench-serve.log", "w+")  # noqa: SIM115 - the server writes to it until we stop it
    proc = subprocess.Popen([str(BIN / "magnet"), "serve", "--port", str(port), "--threads", "8"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            requests.get(f"{base}/api/health", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.2)
    log.seek(0)
    key = re.search(r"Admin API key: (\S+)", log.read())
    if key is None:
        key_file = data_dir / "admin-key.txt"
        key_text = key_file.read_text().strip()
    else:
        key_text = key.group(1)
    return proc, base, key_text


def _timed_search(session, url, key, query) -> float:
    started = time.perf_counter()
    res = session.post(url, json={"query": query, "top_k": 10}, headers={"X-API-Key": key}, timeout=60)
    res.raise_for_status()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--scifact", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--source-name", default=None, help="default: the first source")
    args = parser.parse_args()

    queries = [json.loads(line)["text"] for line in (args.scifact / "queries.jsonl").open()][: args.queries]
    proc, base, key = _serve(args.data_dir.resolve(), _free_port())
    headers = {"X-API-Key": key}
    try:
        sources = requests.get(f"{base}/api/knowledge-sources?limit=100", headers=headers, timeout=30).json()["data"]
        source = next(s for s in sources if args.source_name in (None, s["name"]))
        res = requests.post(f"{base}/api/retrieval-tools", headers=headers, timeout=60,
                            json={"name": f"bench-{int(time.time())}", "knowledge_source_id": source["id"], "top_k": 10})
        tool = res.json()["data"]
        while requests.get(f"{base}/api/retrieval-tools/{tool['id']}", headers=headers, timeout=30
                           ).json()["data"]["status"]["status"] == "building":
            time.sleep(1)
        url = f"{base}/api/retrieval-tools/{tool['id']}/search"
        session = requests.Session()
        for query in queries[:10]:  # warm-up: model load, caches
            _timed_search(session, url, key, query)
        print(f"{'clients':>8} {'queries':>8} {'p50 ms':>8} {'p95 ms':>8} {'q/s':>8}")
        for clients in (1, 8):
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                sessions = [requests.Session() for _ in range(clients)]
                times = list(pool.map(lambda iq: _timed_search(sessions[iq[0] % clients], url, key, iq[1]),
                                      enumerate(queries)))
            wall = time.perf_counter() - started
            print(f"{clients:>8} {len(times):>8} {statistics.median(times):>8.1f} "
                  f"{_percentile(times, 0.95):>8.1f} {len(times) / wall:>8.1f}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
