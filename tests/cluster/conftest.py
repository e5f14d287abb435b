"""A real cluster for the `cluster` suite: PostgreSQL, Redis and a Chroma server, two web nodes (`magnet serve
--workers 2`, so they run no jobs) and two `magnet worker`s, each a separate process with its own data dir.

PostgreSQL comes from MAGNET_TEST_POSTGRES_URL (a fresh database per run); Redis (`redis-server` on PATH,
scripts/start_test_redis.sh installs it) and Chroma (`chroma run` from the virtualenv) are started here,
because the tests stop, freeze and restart them.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 3  # MAGNET_CHROMA_TIMEOUT_SECONDS and MAGNET_REDIS_TIMEOUT_SECONDS of every process
STALE_SECONDS = 10  # MAGNET_RUN_STALE_SECONDS: a killed worker's run is reaped at the next tick after this


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, what: str, timeout: float = 120, interval: float = 0.3):
    """Poll check() until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Service:
    """A server process the tests can stop (SIGTERM), kill (SIGKILL), freeze (SIGSTOP) and start again."""

    def __init__(self, name: str, argv: list[str], logs: Path, env: dict | None = None, port: int | None = None):
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        log = open(self.log_path, "a")  # noqa: SIM115 - the process writes to it while it runs
        # Its own process group: a gunicorn master and its workers stop together.
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=REPO)
        log.close()
        if self.port:
            wait_until(self._listening, f"{self.name} to listen on {self.port}", timeout=180)
        return self

    def _listening(self) -> bool:
        assert self.proc.poll() is None, f"{self.name} exited: {self.log()[-3000:]}"
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def send(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.send(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
        self.send(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Node:
    """A web node: base URL and an API client with the admin key."""

    def __init__(self, service: Service, key: str):
        self.service = service
        self.base = f"http://127.0.0.1:{service.port}"
        self.headers = {"X-API-Key": key}

    def get(self, path, **kw):
        return requests.get(self.base + path, headers=self.headers, timeout=kw.pop("timeout", 60), **kw)

    def post(self, path, **kw):
        return requests.post(self.base + path, headers=self.headers, timeout=kw.pop("timeout", 60), **kw)


class Cluster:
    def __init__(self, tmp: Path, database_url: str):
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.redis = Service("redis", [_redis_server(), "--bind", "127.0.0.1", "--port", str(port := free_port()),
                                       "--save", "", "--appendonly", "no", "--dir", str(tmp)], self.logs, port=port)
        chroma_port = free_port()
        self.chroma = Service("chroma", [str(BIN / "chroma"), "run", "--path", str(tmp / "chroma"), "--host",
                                         "127.0.0.1", "--port", str(chroma_port)], self.logs, port=chroma_port)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNET_")}
        self.env.update(
            MAGNET_DATABASE_URL=database_url,
            MAGNET_REDIS_URL=f"redis://127.0.0.1:{self.redis.port}/0",
            MAGNET_CHROMA_URL=f"http://127.0.0.1:{chroma_port}",
            MAGNET_SECRET_KEY="cluster-test-secret-shared-by-every-node",
            MAGNET_RUN_STALE_SECONDS=str(STALE_SECONDS),
            MAGNET_CHROMA_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
            MAGNET_REDIS_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
            MAGNET_RATE_LIMIT_MUTATIONS="1000000/minute",
            MAGNET_OUTBOUND_ALLOWLIST="127.0.0.1",
            # The tests' folders lie under pytest's temporary root, beside (never inside) the nodes' data dirs.
            MAGNET_SOURCE_ROOTS=str(tmp.parent),
            PYTHONUNBUFFERED="1",
        )
        self.nodes: list[Node] = []
        self.workers: list[Service] = []

    def env_for(self, name: str) -> dict:
        return {**self.env, "MAGNET_DATA_DIR": str(self.tmp / name)}

    def magnet(self, *args: str, name: str = "cli") -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "magnet"), *args], env=self.env_for(name), capture_output=True, text=True,
                              timeout=300, cwd=REPO)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def start(self) -> None:
        self.redis.start()
        self.chroma.start()
        self.magnet("db", "upgrade")
        key = self.magnet("keys", "create", "--role", "admin").stdout.strip().splitlines()[-1]
        for name in ("node-a", "node-b"):
            port = free_port()
            service = Service(name, [str(BIN / "magnet"), "serve", "--port", str(port), "--workers", "2"],
                              self.logs, env=self.env_for(name), port=port)
            self.nodes.append(Node(service.start(), key))
        for name in ("worker-1", "worker-2"):
            self.workers.append(self.start_worker(name))
        for node in self.nodes:
            wait_until(lambda node=node: node.get("/api/health").json()["data"]["workers"].get("alive") == 2,
                       f"{node.base} to see both workers alive")

    def start_worker(self, name: str) -> Service:
        return Service(name, [str(BIN / "magnet"), "worker", "--workers", "2"], self.logs,
                       env=self.env_for(name)).start()

    def stop(self) -> None:
        for service in [*self.workers, *(node.service for node in self.nodes), self.chroma, self.redis]:
            service.stop()


def _redis_server() -> str:
    for candidate in ("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server"):
        path = candidate if os.path.isabs(candidate) else None
        if path is None:
            from shutil import which

            path = which(candidate)
        if path and os.path.exists(path):
            return path
    raise AssertionError("redis-server not found: run scripts/start_test_redis.sh (it installs it)")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    from tests.conftest import POSTGRES_URL, _fresh_postgres_database

    assert POSTGRES_URL, "the cluster suite needs MAGNET_TEST_POSTGRES_URL (scripts/start_test_postgres.sh)"
    running = Cluster(tmp_path_factory.mktemp("cluster"), _fresh_postgres_database(POSTGRES_URL))
    try:
        running.start()
        yield running
    finally:
        running.stop()
        for log in sorted(running.logs.glob("*.log")):  # shown by pytest only when a test failed
            print(f"----- {log.name} (last lines)\n{log.read_text(errors='replace')[-4000:]}")
