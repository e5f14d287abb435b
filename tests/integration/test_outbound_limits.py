"""One operator must not be able to take the service down with slow outbound calls: under `magnet serve`
(gunicorn, 8 request threads), 32 concurrent API-tool tests against an upstream that takes seconds to
answer, while /api/health is polled every 0.5 s."""
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.integration.test_serve import _magnet, running_serve

UPSTREAM_SECONDS = 4
CALLERS = 32


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        with self.server.lock:
            self.server.active += 1
            self.server.peak = max(self.server.peak, self.server.active)
        time.sleep(UPSTREAM_SECONDS)
        with self.server.lock:
            self.server.active -= 1
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.lock, server.active, server.peak = threading.Lock(), 0, 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(tmp_path):
    env = {**os.environ, "MAGNET_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
           "MAGNET_OUTBOUND_ALLOWLIST": "127.0.0.1", "MAGNET_OUTBOUND_CONCURRENCY": "4"}
    env.pop("MAGNET_DATABASE_URL", None)
    assert _magnet(env, "db", "upgrade").returncode == 0
    with running_serve(env, tmp_path / "serve.log", "--threads", "8") as (base, output):
        key = re.search(r"Admin API key: (magnet_ak_\S+)", output).group(1)
        yield base, {"X-API-Key": key}


@pytest.mark.integration
def test_slow_outbound_calls_never_starve_health_or_hang_a_request(server, slow_upstream):
    base, headers = server
    tool = requests.post(f"{base}/api/api-tools", headers=headers, timeout=10, json={
        "name": "slow", "method": "GET", "url_template": f"http://127.0.0.1:{slow_upstream.server_port}/x",
        "input_schema": {"type": "object"}, "timeout_seconds": 30}).json()["data"]
    for _ in range(3):
        requests.get(f"{base}/api/health", timeout=10)  # warm: the first check opens the stores

    health_times, stop = [], threading.Event()

    def poll_health():
        while not stop.is_set():
            started = time.monotonic()
            res = requests.get(f"{base}/api/health", timeout=10)
            health_times.append((time.monotonic() - started, res.status_code))
            stop.wait(0.5)

    def call(_):
        started = time.monotonic()
        res = requests.post(f"{base}/api/api-tools/{tool['id']}/test", headers=headers, json={"input": {}},
                            timeout=60)
        return res, time.monotonic() - started

    poller = threading.Thread(target=poll_health)
    poller.start()
    try:
        with ThreadPoolExecutor(CALLERS) as pool:
            results = list(pool.map(call, range(CALLERS)))
    finally:
        stop.set()
        poller.join()

    served = [r for r, _ in results if r.status_code == 200]
    refused = [(r, s) for r, s in results if r.status_code == 429]
    assert len(served) + len(refused) == CALLERS, [r.status_code for r, _ in results]
    assert len(served) >= 1 and slow_upstream.peak <= 4  # never more outbound calls than slots
    assert refused, "32 callers against 4 slots: some must have been refused"
    for res, seconds in refused:
        assert res.json()["error"]["code"] == "busy" and int(res.headers["Retry-After"]) > 0
        assert seconds < UPSTREAM_SECONDS  # refused at once, not after waiting behind the slow calls
    assert len(health_times) >= 4
    assert all(status == 200 for _, status in health_times)
    assert max(seconds for seconds, _ in health_times) < 1.0, health_times
    # The slots come back: once the slow calls are over, a new one is served.
    again = requests.post(f"{base}/api/api-tools/{tool['id']}/test", headers=headers, json={"input": {}}, timeout=60)
    assert again.status_code == 200
