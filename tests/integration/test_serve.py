"""What `make run` does, end to end over real HTTP: migrate, seed, serve under gunicorn, print a working key."""
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _magnet(env, *args, **kwargs):
    return subprocess.run([str(BIN / "magnet"), *args], env=env, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(params=["default", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request, tmp_path):
    """`magnet serve` on a fresh data dir: on MAGNET_DATABASE_URL when set (else SQLite in the data dir),
    and in the postgres pass on a fresh PostgreSQL database."""
    from tests.conftest import POSTGRES_URL, _fresh_postgres_database

    env = {**os.environ, "MAGNET_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    if request.param == "postgresql":
        env["MAGNET_DATABASE_URL"] = _fresh_postgres_database(POSTGRES_URL)
    for step in (("db", "upgrade"), ("seed",)):
        done = _magnet(env, *step)
        assert done.returncode == 0, done.stderr
    with running_serve(env, tmp_path / "serve.log") as (base, output):
        yield base, output, env


@contextlib.contextmanager
def running_serve(env: dict, log_path: Path, *args: str):
    """`magnet serve` on a free port until the block ends; yields its base URL and what it printed at start."""
    port = _free_port()
    log = open(log_path, "w+")  # noqa: SIM115 - outlives this block: the server writes to it
    proc = subprocess.Popen([str(BIN / "magnet"), "serve", "--port", str(port), *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/api/health", timeout=2).status_code in (200, 503):
                    break
            except requests.RequestException:  # not listening yet, or the worker is still loading models
                time.sleep(0.1)
        log.seek(0)
        yield base, log.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.integration
def test_serve_prints_a_working_admin_key_and_curl(served):
    base, output, env = served
    key = re.search(r"Admin API key: (magnet_ak_\S+)", output).group(1)
    curl = re.search(r"Try:\s+(curl .+)", output).group(1)
    assert key in curl and f"{base}/api/status" in curl

    status = requests.get(f"{base}/api/status", headers={"X-API-Key": key}, timeout=10)
    assert status.status_code == 200
    assert status.json()["data"]["counts"]["models"] == 2  # the built-ins are there from the first start
    health = requests.get(f"{base}/api/health", timeout=10).json()["data"]
    assert health["status"] == "ok", health
    assert requests.get(f"{base}/api/status", timeout=10).status_code == 401

    # the key file is private to the user, and a second start prints the same key
    key_file = Path(env["MAGNET_DATA_DIR"]) / "admin-key.txt"
    assert key_file.read_text().strip() == key
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


@pytest.mark.integration
def test_seed_is_idempotent(served):
    _, _, env = served
    done = _magnet(env, "seed")
    assert done.returncode == 0, done.stderr
    assert "prompt template" not in done.stdout  # already there: nothing created twice


@pytest.mark.integration
def test_serve_loads_the_indexes_embedding_model_before_the_first_query(served, tmp_path):
    from tests.conftest import wait_for

    served_log = tmp_path / "serve.log"
    output = wait_for(served_log.read_text, lambda text: "embedding models loaded" in text, timeout=90)
    assert "embedding models loaded: local-minilm" in output  # the seeded demo index's model
    assert "POST /api/" not in output  # no query asked for it


@pytest.mark.integration
def test_requests_gunicorn_refuses_are_answered_in_json_too(served):
    base, _, _ = served
    too_long = requests.get(f"{base}/api/models?q={'x' * 6000}", timeout=10)
    assert too_long.status_code == 414
    assert too_long.headers["Content-Type"] == "application/json"
    assert too_long.json()["success"] is False and too_long.json()["error"]["code"] == "uri_too_long"
    doubled = requests.get(f"{base}/api//models", timeout=10, allow_redirects=False)
    assert doubled.status_code == 401 and doubled.headers["Content-Type"] == "application/json"
