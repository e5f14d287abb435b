"""Health checks that touch each dependency for real, and the operator's status summary."""
from __future__ import annotations

import contextlib
import platform
import threading
import time
from importlib.metadata import PackageNotFoundError, version

from flask import current_app
from huey import RedisHuey
from sqlalchemy import func, select, text

from app import __version__
from app.common.queue import queue_state
from app.extensions import db
from app.models import (
    Agent,
    AgentTask,
    ApiKey,
    ApiTool,
    Conversation,
    Document,
    Evaluation,
    EvaluationCase,
    EvaluationRun,
    Integration,
    KnowledgeIndex,
    KnowledgeSource,
    LlmModel,
    Message,
    PromptTemplate,
    RagTool,
    RetrievalTool,
    SyncRun,
    Trace,
    UsageRecord,
)
from app.services import liveness
from app.vectordb import chroma_client

COUNTED = {
    "models": LlmModel,
    "prompt_templates": PromptTemplate,
    "agents": Agent,
    "agent_tasks": AgentTask,
    "api_tools": ApiTool,
    "knowledge_sources": KnowledgeSource,
    "documents": Document,
    "knowledge_indexes": KnowledgeIndex,
    "sync_runs": SyncRun,
    "rag_tools": RagTool,
    "retrieval_tools": RetrievalTool,
    "api_keys": ApiKey,
    "usage_records": UsageRecord,
    "conversations": Conversation,
    "messages": Message,
    "integrations": Integration,
    "evaluations": Evaluation,
    "evaluation_test_cases": EvaluationCase,
    "evaluation_runs": EvaluationRun,
    "traces": Trace,
}


# Each check has this long to answer; they run side by side, so /api/health answers within about this bound
# even when a dependency is frozen (its check is abandoned, and reported down).
CHECK_SECONDS = 2.0
_in_flight: dict[tuple[int, str], _Check] = {}
_in_flight_lock = threading.Lock()


class _Check:
    """One dependency check, run in its own thread inside the app's context."""

    def __init__(self, app, name: str, check):
        self.name, self.check, self.app = name, check, app
        self.result: dict | None = None
        self.started = time.perf_counter()
        self.thread = threading.Thread(target=self._run, name=f"health-{name}", daemon=True)

    @classmethod
    def start(cls, app, name: str, check) -> _Check:
        """A new check, or the one of this dependency still in flight: a frozen service holds one thread,
        however often health is asked."""
        with _in_flight_lock:
            key = (id(app), name)
            running = _in_flight.get(key)
            if running is not None and running.thread.is_alive():
                return running
            started = _in_flight[key] = cls(app, name, check)
            started.thread.start()
            return started

    def _run(self) -> None:
        with self.app.app_context():
            try:
                extra = self.check() or {}
                self.result = {"status": "ok", **extra}
            except Exception as exc:  # a health check reports failures; it never raises them
                self.result = {"status": "down", "detail": f"{type(exc).__name__}: {exc}"[:300]}
            finally:
                _discard_session()

    def outcome(self, deadline: float) -> dict:
        self.thread.join(max(0.0, deadline - time.perf_counter()))
        waited = round((time.perf_counter() - self.started) * 1000, 2)
        result = dict(self.result or {"status": "down", "detail": f"no answer after {waited / 1000:.1f} s"})
        result["latency_ms"] = waited
        return result


def _discard_session() -> None:
    with contextlib.suppress(Exception):  # a lost connection cannot even roll back: the session goes anyway
        db.session.rollback()
    db.session.remove()


def _check_database() -> dict:
    db.session.execute(text("SELECT 1")).scalar_one()
    return {"backend": db.engine.dialect.name}


def _check_vector_db() -> dict:
    config = current_app.extensions["magnet.config"]
    chroma_client().heartbeat()
    return {"backend": "chroma-http" if config.chroma_url else "chroma-embedded"}


def _check_job_queue() -> dict:
    queue = current_app.extensions["magnet.queue"]
    if isinstance(queue, RedisHuey):
        queue.storage.conn.ping()
        return {"backend": "redis"}
    queue.pending_count()  # reads the SQLite queue file
    return {"backend": "sqlite"}


def _check_workers() -> dict:
    """Job consumers that beat recently, and whether runs wait for one."""
    workers = liveness.workers_alive()
    queued = sum(db.session.execute(select(func.count()).select_from(model).where(model.status == "queued"))
                 .scalar_one() for model in (SyncRun, EvaluationRun))
    last = workers["last_heartbeat"]
    return {"alive": workers["alive"], "last_heartbeat": last.isoformat().replace("+00:00", "Z") if last else None,
            "queued_runs": queued}


REQUIRED = {"database": _check_database, "vector_db": _check_vector_db, "job_queue": _check_job_queue}


def check_health() -> dict:
    """Every dependency, checked for real and side by side. 'unavailable' (503) when a required one is down;
    'degraded' when runs are queued and no worker is alive to take them."""
    app = current_app._get_current_object()
    checks = [_Check.start(app, name, check) for name, check in {**REQUIRED, "workers": _check_workers}.items()]
    deadline = time.perf_counter() + CHECK_SECONDS
    report = {check.name: check.outcome(deadline) for check in checks}
    workers = report["workers"]
    if any(report[name]["status"] != "ok" for name in REQUIRED):
        status = "unavailable"
    elif workers["status"] == "ok" and workers["alive"] == 0 and workers["queued_runs"] > 0:
        status = "degraded"
    else:
        status = "ok"
    return {"status": status, "version": __version__, **report}


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _migration_revision() -> str | None:
    try:
        return db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:
        db.session.rollback()
        return None


def status() -> dict:
    counts = {
        name: db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for name, model in COUNTED.items()
    }
    queue = current_app.extensions["magnet.queue"]
    return {
        "version": __version__,
        "versions": {
            "magnet": __version__,
            "python": platform.python_version(),
            **{pkg: _package_version(pkg) for pkg in ("flask", "sqlalchemy", "chromadb", "huey")},
        },
        "counts": counts,
        "job_queue": queue_state(queue),
        "database": {"dialect": db.engine.dialect.name, "migration": _migration_revision()},
    }
