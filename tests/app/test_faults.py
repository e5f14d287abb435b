"""A shared service down or frozen answers a clear 503 in the error envelope, within a bound, never a 500.

'Down' is a real closed port (connection refused); 'frozen' is a real listening socket that never answers
(the kernel completes the handshake, nothing replies), as a SIGSTOPped server does. Real Redis, Chroma and
PostgreSQL servers are killed, stopped and frozen by the cluster suite (tests/cluster).
"""
import socket
import time

import pytest

from app import create_app
from app.config import Config

BOUND = 1.0  # the configured timeouts of these apps
NO_HANG = 3 * BOUND + 5  # generous: proves only that the answer did not wait on the frozen service


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def frozen_port():
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def lone_app(tmp_path):
    """lone_app(**config) -> a migrated app on its own SQLite database and data dir, and an admin key."""
    from flask_migrate import upgrade

    def make(**overrides):
        config = Config(data_dir=tmp_path / "data", secret_key="k", testing=True, source_roots=[tmp_path],
                        chroma_timeout_seconds=BOUND, redis_timeout_seconds=BOUND, **overrides)
        app = create_app(config)
        with app.app_context():
            upgrade()
            from app.services.api_keys import create_key
            from app.services.llm_models import ensure_builtin_models

            ensure_builtin_models()
            key = create_key("admin", "admin")[1]
        return app, key

    return make


def _sync_runs(app) -> int:
    from app.extensions import db
    from app.models import SyncRun

    with app.app_context():
        return db.session.query(SyncRun).count()


def _source(client, key, tmp_path) -> str:
    (tmp_path / "docs").mkdir(exist_ok=True)
    res = client.post("/api/knowledge-sources", headers={"X-API-Key": key},
                      json={"name": "docs", "type": "directory", "configuration": {"path": str(tmp_path / "docs")}})
    assert res.status_code == 201, res.json
    return res.json["data"]["id"]


@pytest.mark.parametrize("redis", ["down", "frozen"])
def test_a_sync_the_queue_cannot_take_is_503_queue_unavailable_and_leaves_no_run(lone_app, tmp_path, redis,
                                                                                  request):
    port = _closed_port() if redis == "down" else request.getfixturevalue("frozen_port")
    app, key = lone_app(redis_url=f"redis://127.0.0.1:{port}/0")
    client = app.test_client()
    source_id = _source(client, key, tmp_path)

    started = time.monotonic()
    res = client.post(f"/api/knowledge-sources/{source_id}/sync", headers={"X-API-Key": key})
    assert time.monotonic() - started < NO_HANG
    assert res.status_code == 503, res.json
    assert res.json["success"] is False
    assert res.json["error"]["code"] == "queue_unavailable"
    assert res.json["error"]["details"]["component"] == "job_queue"
    assert _sync_runs(app) == 0  # no orphan 'queued' run to block the next sync with 409

    health = client.get("/api/health")
    assert health.status_code == 503
    assert health.json["data"]["status"] == "unavailable"
    assert health.json["data"]["job_queue"]["status"] == "down"
    assert health.json["data"]["database"]["status"] == "ok"


def test_health_answers_within_its_bound_when_chroma_is_frozen(lone_app, frozen_port):
    app, _ = lone_app(chroma_url=f"http://127.0.0.1:{frozen_port}")
    client = app.test_client()
    for _ in range(2):  # the second call finds the first check still waiting, and says so at once
        started = time.monotonic()
        res = client.get("/api/health")
        assert time.monotonic() - started < NO_HANG
        assert res.status_code == 503
        assert res.json["data"]["vector_db"]["status"] == "down"
        assert res.json["data"]["database"]["status"] == "ok"
        assert res.json["data"]["job_queue"] == {**res.json["data"]["job_queue"], "status": "ok",
                                                 "backend": "sqlite"}


def test_a_request_that_needs_a_frozen_chroma_is_503_naming_it(lone_app, frozen_port):
    app, _ = lone_app(chroma_url=f"http://127.0.0.1:{frozen_port}")
    from app.vectordb import chroma_client

    with app.test_request_context():
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            chroma_client()
        assert time.monotonic() - started < NO_HANG
    from app.faults import component_down

    assert component_down(raised.value) == "vector_store"


def test_health_counts_workers_and_is_degraded_when_runs_wait_for_none(lone_app, tmp_path):
    app, key = lone_app()
    client = app.test_client()
    data = client.get("/api/health").json["data"]
    assert data["status"] == "ok" and data["workers"]["alive"] == 0 and data["workers"]["queued_runs"] == 0

    source_id = _source(client, key, tmp_path)
    assert client.post(f"/api/knowledge-sources/{source_id}/sync", headers={"X-API-Key": key}).status_code == 202
    res = client.get("/api/health")
    assert res.status_code == 200  # the web node itself is fine: a load balancer keeps it
    assert res.json["data"]["status"] == "degraded"
    assert res.json["data"]["workers"]["queued_runs"] == 1 and res.json["data"]["workers"]["alive"] == 0

    from app.services.liveness import WorkerBeat

    beat = WorkerBeat(app).start()
    try:
        data = client.get("/api/health").json["data"]
        assert data["status"] == "ok" and data["workers"]["alive"] == 1
        assert data["workers"]["last_heartbeat"].endswith("Z")
    finally:
        beat.stop()


def test_a_second_web_process_on_the_embedded_chroma_is_refused(tmp_path):
    from app.vectordb import EmbeddedChromaBusy

    config = dict(data_dir=tmp_path / "data", secret_key="k", testing=True)
    first = create_app(Config(**config), web_process=True)
    # A second open of the lock file conflicts exactly as another process's would (flock is per open file).
    with pytest.raises(EmbeddedChromaBusy, match="MAGNET_CHROMA_URL") as refused:
        create_app(Config(**config), web_process=True)
    assert "already served by another web process" in str(refused.value)
    create_app(Config(**config))  # a CLI command (not a web process) is not refused
    import os

    os.close(first.extensions["magnet.chroma_lock"])
    create_app(Config(**config), web_process=True)  # the holder gone, the next one starts


def test_a_request_while_the_database_is_down_is_503_naming_it(tmp_path):
    config = Config(data_dir=tmp_path, database_url=f"postgresql+psycopg://u:p@127.0.0.1:{_closed_port()}/x",
                    secret_key="k", testing=True)
    res = create_app(config).test_client().get("/api/status", headers={"X-API-Key": "magnet_ak_whatever"})
    assert res.status_code == 503, res.json
    assert res.json["success"] is False
    assert res.json["error"]["code"] == "service_unavailable"
    assert res.json["error"]["details"]["component"] == "database"
