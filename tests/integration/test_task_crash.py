"""A `magnet worker` killed with SIGKILL mid-task: the next worker retries the task, or fails it with the
reason once its attempts are spent; no task is left `in_progress`.

Everything runs as an operator would run it: the `magnet` console script in subprocesses on a fresh data
dir, with the real SQLite database and job queue. Only the LLM provider is a stand-in (tests/support/fake_llm).
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

from tests.support.fake_llm import FakeLLM, Reply, Sleep

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MAGNET = str(Path(sys.executable).parent / "magnet")
ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter on the data dir, through the API: a chat model served by the fake LLM, and two
# agents with one task each; one may be tried twice, the other once.
SETUP = r"""
import json, sys
from flask_migrate import upgrade
from app import create_app
from app.services.api_keys import create_key

app = create_app()
with app.app_context():
    upgrade()
    key = create_key("crash test", "admin")[1]
client, headers = app.test_client(), {"X-API-Key": key}
def post(path, body):
    res = client.post(path, headers=headers, json=body)
    assert res.status_code in (200, 201), res.json
    return res.json["data"]
model = post("/api/models", {"name": "fake", "provider": "openai_compatible", "model_id": "fake-model",
                             "kind": "chat", "endpoint": sys.argv[1], "api_key": "sk-test"})
ids = {}
for name, attempts in (("retried", 2), ("spent", 1)):
    agent = post("/api/agents", {"name": name, "model_id": model["id"]})
    ids[name] = post("/api/tasks", {"agent_id": agent["id"], "title": name, "instructions": "Go.",
                                    "max_attempts": attempts})["id"]
print(json.dumps(ids))
"""


def _env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNET_")}
    env.update(MAGNET_DATA_DIR=str(data_dir), MAGNET_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               MAGNET_OUTBOUND_ALLOWLIST="127.0.0.1")
    return env


def _tasks(data_dir: Path) -> dict:
    """{title: (status, attempts, error, result)} read straight from the SQLite file."""
    with sqlite3.connect(f"file:{data_dir / 'magnet.db'}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT title, status, attempts, error, result FROM agent_tasks").fetchall()
    return {title: (status, attempts, json.loads(error) if error else None, json.loads(result) if result else None)
            for title, status, attempts, error, result in rows}


def _until(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _worker(data_dir: Path, logs: Path, name: str) -> subprocess.Popen:
    log = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([MAGNET, "worker", "--workers", "2"], env=_env(data_dir), stdout=log, stderr=log)


def test_a_worker_killed_mid_task_leaves_it_retried_or_failed_with_the_reason(tmp_path):
    data_dir, logs = tmp_path / "data", tmp_path
    with FakeLLM() as llm:
        llm.script(Sleep(300), Sleep(300))  # both tasks' turns wait on the provider when the worker dies
        setup = subprocess.run([sys.executable, "-c", SETUP, llm.base_url], env=_env(data_dir), cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
        assert setup.returncode == 0, setup.stderr
        ids = json.loads(setup.stdout.strip().splitlines()[-1])

        first = _worker(data_dir, logs, "worker-1")
        try:
            _until(lambda: len(llm.posts) == 2 and all(s[0] == "in_progress" for s in _tasks(data_dir).values()),
                   "both tasks to be mid-turn")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        killed = _tasks(data_dir)
        assert {title: state[:2] for title, state in killed.items()} == {"retried": ("in_progress", 1),
                                                                          "spent": ("in_progress", 1)}
        for task_id in ids.values():  # their leases, now held by nobody
            assert (data_dir / "locks" / f"task-{task_id}.lock").exists()

        llm.script(Reply("Recovered answer."))
        second = _worker(data_dir, logs, "worker-2")
        try:
            final = _until(lambda: (lambda t: t if t["retried"][0] == "completed" and t["spent"][0] == "failed"
                                    else None)(_tasks(data_dir)), "the next worker to recover both tasks")
        finally:
            second.send_signal(signal.SIGINT)
            try:
                second.wait(timeout=30)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait()

    status, attempts, error, result = final["retried"]
    assert attempts == 2 and error is None and result["content"] == "Recovered answer."
    status, attempts, error, result = final["spent"]
    assert attempts == 1 and result is None and error["code"] == "worker_lost"
    assert "Interrupted (worker lost)" in error["message"] and "No attempts are left" in error["message"]
    assert len(llm.posts) == 3  # the retry asked once more; the spent task was not retried
