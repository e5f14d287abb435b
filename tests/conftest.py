"""Fixtures shared by every test: an app on a real migrated database, API keys of each role, a client.

The database is migrated once per session with the real Alembic migrations; each test then starts from
empty tables (deleted in dependency order), which works the same on SQLite and PostgreSQL.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.config import DEFAULT_SOURCE_ROOTS, Config

POSTGRES_URL = os.environ.get("MAGNET_TEST_POSTGRES_URL")
CLUSTER = os.environ.get("MAGNET_TEST_CLUSTER") == "1"


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need a real server: without MAGNET_TEST_POSTGRES_URL they are deselected
    (not skipped: .ci/run starts PostgreSQL and runs them in a second pass). Tests marked `cluster` start a
    whole cluster: they run only with MAGNET_TEST_CLUSTER=1 (.ci/run's last pass). Tests marked `browser`
    need Debian's chromium and chromium-driver: deselected where they are missing, unless
    MAGNET_REQUIRE_BROWSER=1 (.ci/run installs them and sets it), where a missing browser fails."""
    from tests.console.browser import REQUIRED, browser_present

    browser = REQUIRED or browser_present()

    def wanted(item) -> bool:
        if "browser" in item.keywords and not browser:
            return False  # no Chromium here; CI sets MAGNET_REQUIRE_BROWSER=1, where it must be there
        if "cluster" in item.keywords:
            return CLUSTER and bool(POSTGRES_URL)
        return bool(POSTGRES_URL) or "postgres" not in item.keywords

    kept = [item for item in items if wanted(item)]
    deselected = [item for item in items if not wanted(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def _fresh_postgres_database(base_url: str) -> str:
    """A new, empty database on the test server, so runs never see each other's tables."""
    name = f"magnet_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("magnet-data")


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, session_data_dir) -> str:
    if request.param == "postgresql":
        return _fresh_postgres_database(POSTGRES_URL)
    return f"sqlite:///{session_data_dir / 'magnet-test.db'}"


@pytest.fixture(scope="session")
def migrated_app(database_url, session_data_dir, tmp_path_factory):
    from flask_migrate import upgrade

    config = Config(
        data_dir=session_data_dir,
        database_url=database_url,
        secret_key="test-secret-key-not-for-production",
        testing=True,
        outbound_allowlist=["127.0.0.1", "localhost"],
        # Tests create many objects quickly; tests/app/test_rate_limits.py sets a low limit of its own.
        rate_limit_mutations="100000/minute",
        # Tests make their folders under pytest's temporary root (the data dir there stays protected);
        # the demo's samples are a root by default.
        source_roots=[tmp_path_factory.getbasetemp(), *DEFAULT_SOURCE_ROOTS],
    )
    app = create_app(config)
    with app.app_context():
        upgrade()
    return app


@pytest.fixture
def app(migrated_app):
    from app.extensions import db
    from app.services.llm_models import ensure_builtin_models

    with migrated_app.app_context():
        ensure_builtin_models()  # as `magnet serve` and `magnet seed` do on a real install
        yield migrated_app
        db.session.rollback()
        # Empty every table, children first, so the next test starts clean.
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_key(app):
    """make_key(role) -> a real key of that role, created through the service."""
    from app.services.api_keys import create_key

    def _make(role: str = "admin") -> str:
        return create_key(f"test {role}", role)[1]

    return _make


@pytest.fixture
def api(client, make_key):
    """A small client that sends an admin key by default: api.get(path), api.post(path, json=...)."""
    return ApiClient(client, make_key("admin"))


class ApiClient:
    def __init__(self, client, key: str):
        self.client = client
        self.key = key

    def _call(self, method: str, path: str, *, key: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        headers.setdefault("X-API-Key", key or self.key)
        return getattr(self.client, method)(path, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self._call("get", path, **kw)

    def post(self, path, **kw):
        return self._call("post", path, **kw)

    def put(self, path, **kw):
        return self._call("put", path, **kw)

    def delete(self, path, **kw):
        return self._call("delete", path, **kw)


@pytest.fixture(scope="session")
def _consumer(migrated_app):
    """A real Huey consumer (threads) on the session's queue, as `magnet serve` runs it."""
    from app.jobs import start_consumer

    consumer = start_consumer(migrated_app, workers=2)
    yield consumer
    from app.jobs import stop_consumer

    stop_consumer(consumer)


@pytest.fixture
def worker(_consumer, app):
    """Background jobs run for this test; waits for the queue to drain before the tables are emptied."""
    yield _consumer
    from app.extensions import db
    from app.models import AgentTask, SyncRun

    for _ in range(600):
        db.session.expire_all()
        busy = db.session.execute(db.select(SyncRun.id).where(SyncRun.status.in_(("queued", "running")))).first()
        busy = busy or db.session.execute(db.select(AgentTask.id).where(AgentTask.status == "in_progress")).first()
        if busy is None:
            break
        import time

        time.sleep(0.1)


def wait_for(fetch, done, timeout: float = 120.0, interval: float = 0.1):
    """Poll fetch() until done(result) or the timeout; returns the last result."""
    import time

    deadline = time.monotonic() + timeout
    result = fetch()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = fetch()
    return result
