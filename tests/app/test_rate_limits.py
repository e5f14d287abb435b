"""Mutations are rate-limited per API key (flask-limiter): 429 in the error envelope with Retry-After,
counted in Redis across processes when Redis is configured, and never a 500 when Redis is down."""
import shutil
import socket
import subprocess
import time

import pytest
import redis

from app import create_app
from app.config import Config


def _template(api_or_client, key, n):
    return api_or_client.post("/api/prompt-templates", headers={"X-API-Key": key},
                              json={"name": f"t-{time.monotonic_ns()}-{n}", "type": "system", "template": "Hi"})


def test_mutations_over_the_limit_get_429_with_retry_after_and_other_keys_are_not_affected(
        app, client, make_key, monkeypatch):
    monkeypatch.setattr(app.extensions["magnet.config"], "rate_limit_mutations", "3/minute")
    busy, other = make_key("operator"), make_key("operator")
    assert [_template(client, busy, n).status_code for n in range(3)] == [201, 201, 201]
    refused = _template(client, busy, 3)
    assert refused.status_code == 429
    assert refused.json["success"] is False and refused.json["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json["error"]["details"]["retry_after_seconds"] == int(refused.headers["Retry-After"])
    # A refused write changed nothing; reads are not limited; another key has its own budget.
    names = [t["name"] for t in client.get("/api/prompt-templates", headers={"X-API-Key": busy}).json["data"]]
    assert len(names) == 3
    assert client.delete("/api/prompt-templates/pt_nope", headers={"X-API-Key": busy}).status_code == 429
    assert _template(client, other, 0).status_code == 201


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path):
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield process, url
    process.kill()
    process.wait()


def test_two_processes_share_the_limit_through_redis_and_redis_down_is_no_500(tmp_path, redis_server):
    from flask_migrate import upgrade

    process, url = redis_server
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    apps = [create_app(Config(data_dir=tmp_path / name, database_url=database, secret_key="k", testing=True,
                              redis_url=url, redis_timeout_seconds=1, rate_limit_mutations="2/minute"))
            for name in ("node-a", "node-b")]
    with apps[0].app_context():
        upgrade()
        from app.services.api_keys import create_key

        key = create_key("ops", "operator")[1]
    first, second = (a.test_client() for a in apps)
    assert _template(first, key, 1).status_code == 201
    assert _template(second, key, 2).status_code == 201
    assert _template(first, key, 3).status_code == 429  # the other node's write counted here too

    process.kill()
    process.wait()
    statuses = [_template(client, key, n).status_code for n, client in enumerate((first, second, first), start=4)]
    assert 500 not in statuses and statuses[0] == 201, statuses  # counted in memory while Redis is down
