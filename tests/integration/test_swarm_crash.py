"""A `magnet worker` killed with SIGKILL mid-swarm: the swarm ends failed with its reason, never stuck running.

Everything runs as a deployment runs it: the `magnet worker` console script in subprocesses on a fresh
data dir, the real SQLite database and job queue, members' turns through the real runtime against the
scripted fake LLM server (which holds their answers, so the worker is surely mid-swarm when it dies).
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fake_llm import FakeLLM, Sleep

pytestmark = [pytest.mark.integration]
MAGNET = str(Path(sys.executable).parent / "magnet")
ROOT = Path(__file__).resolve().parents[2]


def _setup(data_dir: Path, endpoint: str) -> str:
    """On a fresh data dir, as its own app (the workers read the same database, queue and secret): a model
    served by the fake LLM, two agents, and a swarm queued on the data dir's job queue, consumed by no one yet."""
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.services.api_keys import create_key
    from app.services.llm_models import ensure_builtin_models

    app = create_app(Config(data_dir=data_dir, outbound_allowlist=["127.0.0.1", "localhost"]))
    with app.app_context():
        upgrade()
        ensure_builtin_models()
        headers = {"X-API-Key": create_key("crash test", "admin")[1]}
        client = app.test_client()
        model = client.post("/api/models", headers=headers, json={
            "name": "slow", "provider": "openai_compatible", "model_id": "fake-model", "kind": "chat",
            "endpoint": endpoint, "api_key": "sk-test"}).json["data"]["id"]
        for name in ("left", "right"):
            assert client.post("/api/agents", headers=headers, json={"name": name, "model_id": model}).status_code == 201
        res = client.post("/api/swarms", headers=headers, json={"goal": "Never finishes.", "agents": ["left", "right"]})
        assert res.status_code == 202, res.json
        from app.extensions import db

        db.engine.dispose()
        return res.json["data"]["id"]


def _env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNET_")}
    env.update(MAGNET_DATA_DIR=str(data_dir), MAGNET_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               MAGNET_OUTBOUND_ALLOWLIST="127.0.0.1,localhost")
    return env


def _swarm(db_path: Path, swarm_id: str) -> dict:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
        status, stop_reason, message = conn.execute(
            "SELECT status, stop_reason, message FROM swarms WHERE id = ?", (swarm_id,)).fetchone()
        members = conn.execute("SELECT status, error FROM swarm_members WHERE swarm_id = ? ORDER BY position",
                               (swarm_id,)).fetchall()
    return {"status": status, "stop_reason": stop_reason, "message": message,
            "members": [{"status": s, "error": json.loads(e) if e else None} for s, e in members]}


def _wait(check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def _worker(data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([MAGNET, "worker", "--workers", "2"], env=_env(data_dir), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_worker_killed_mid_swarm_leaves_it_failed_with_the_reason(tmp_path):
    data_dir = tmp_path / "data"
    db_path = data_dir / "magnet.db"
    with FakeLLM(default=Sleep(120)) as llm:  # every member's answer waits: the worker dies while they do
        swarm_id = _setup(data_dir, llm.base_url)

        first = _worker(data_dir)
        try:
            _wait(lambda: _swarm(db_path, swarm_id)["status"] == "running" and len(llm.posts) == 2)
            assert first.poll() is None, "the worker ended before it could be killed"
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        killed = _swarm(db_path, swarm_id)
        assert killed["status"] == "running"  # really killed mid-swarm: nothing ended it
        assert [m["status"] for m in killed["members"]] == ["running", "running"]

        # A worker starting on this data dir finds the dead one's swarm at once (its lease is free).
        second = _worker(data_dir)
        try:
            ended = _wait(lambda: (lambda s: s if s["status"] != "running" else None)(_swarm(db_path, swarm_id)))
        finally:
            _stop(second)

    assert ended["status"] == "failed" and ended["stop_reason"] == "worker_lost"
    assert ended["message"].startswith("Interrupted (worker lost)")
    assert [m["status"] for m in ended["members"]] == ["failed", "failed"]
    assert {m["error"]["code"] for m in ended["members"]} == {"worker_lost"}
