"""Health checks that touch each dependency for real, and the operator's status summary."""
from __future__ import annotations

import platform
import time
from importlib.metadata import PackageNotFoundError, version

from flask import current_app
from sqlalchemy import func, select, text

from app import __version__
from app.extensions import db
from app.jobs import queue_state
from app.models import (
    Agent,
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
from app.vectordb import chroma_client

COUNTED = {
    "models": LlmModel,
    "prompt_templates": PromptTemplate,
    "agents": Agent,
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


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        extra = check() or {}
        status = {"status": "ok", **extra}
    except Exception as exc:  # a health check reports failures; it never raises them
        status = {"status": "down", "detail": f"{type(exc).__name__}: {exc}"[:300]}
    status["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return status


def _check_database() -> dict:
    db.session.execute(text("SELECT 1")).scalar_one()
    return {"backend": db.engine.dialect.name}


def _check_vector_db() -> dict:
    config = current_app.extensions["magnet.config"]
    chroma_client().heartbeat()
    return {"backend": "chroma-http" if config.chroma_url else "chroma-embedded"}


def check_health() -> dict:
    database = _timed(_check_database)
    if database["status"] != "ok":
        db.session.rollback()
    vector = _timed(_check_vector_db)
    healthy = database["status"] == "ok" and vector["status"] == "ok"
    return {
        "status": "ok" if healthy else "degraded",
        "version": __version__,
        "database": database,
        "vector_db": vector,
    }


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
