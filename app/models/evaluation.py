"""Evaluation suites, their test cases, their runs and each run's per-case results."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, id_column, utcnow

EVALUATION_TYPES = ("rag_tool", "retrieval_tool", "prompt_template", "agent")
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE_RUN_STATUSES = ("queued", "running")
CASE_STATUSES = ("ok", "error", "timeout")


class Evaluation(TimestampMixin, Base):
    __tablename__ = "evaluations"

    id: Mapped[str] = id_column("eval")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(30))
    target_id: Mapped[str] = mapped_column(String(40), index=True)
    metrics: Mapped[list] = mapped_column(default=list)  # [{"name": "ndcg@10", "k": 10, ...params}]
    thresholds: Mapped[dict] = mapped_column(default=dict)  # {"ndcg@10": 0.7}
    # concurrency, timeout_s, retries, judge_model_id, model_id (prompt targets), variable
    settings: Mapped[dict] = mapped_column(default=dict)


class EvaluationCase(Base):
    __tablename__ = "evaluation_cases"

    id: Mapped[str] = id_column("case")
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int]
    input: Mapped[str] = mapped_column(Text)
    expected_output: Mapped[dict | None]  # {"value": str | [str]}: JSON so a list of golds keeps its shape
    expected_sources: Mapped[list] = mapped_column(default=list)  # [{"id", "grade"}]
    expected_no_answer: Mapped[bool] = mapped_column(default=False)
    case_metadata: Mapped[dict] = mapped_column("metadata", default=dict)
    filters: Mapped[dict | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class EvaluationRun(TimestampMixin, Base):
    __tablename__ = "evaluation_runs"

    id: Mapped[str] = id_column("run")
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    trigger: Mapped[str] = mapped_column(String(20), default="api")  # api, cli
    passed: Mapped[bool | None]
    cases_total: Mapped[int] = mapped_column(default=0)
    cases_done: Mapped[int] = mapped_column(default=0)
    cases_failed: Mapped[int] = mapped_column(default=0)
    # What was evaluated, frozen at the start: tool and index settings, models, prompt version, metrics.
    target_snapshot: Mapped[dict] = mapped_column(default=dict)
    metrics: Mapped[dict] = mapped_column(default=dict)  # aggregates, filled as the run ends
    thresholds: Mapped[dict] = mapped_column(default=dict)  # {"ndcg@10": {"threshold", "score", "passed"}}
    totals: Mapped[dict] = mapped_column(default=dict)  # latency percentiles, tokens, cost
    message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]


class EvaluationResult(Base):
    """One case of one run: what the target returned, each metric's score, and what went wrong."""

    __tablename__ = "evaluation_results"
    __table_args__ = (Index("uq_evaluation_results_run_case", "run_id", "case_id", unique=True),)

    id: Mapped[str] = id_column("res")
    run_id: Mapped[str] = mapped_column(ForeignKey("evaluation_runs.id", ondelete="CASCADE"))
    case_id: Mapped[str] = mapped_column(String(40))
    ordinal: Mapped[int]
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    output: Mapped[dict] = mapped_column(default=dict)  # answer, no_answer, retrieved, citations
    scores: Mapped[dict] = mapped_column(default=dict)
    metric_errors: Mapped[dict] = mapped_column(default=dict)
    details: Mapped[dict] = mapped_column(default=dict)
    warnings: Mapped[list] = mapped_column(default=list)
    latency_ms: Mapped[float | None]
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost: Mapped[float] = mapped_column(default=0.0)
    attempts: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
