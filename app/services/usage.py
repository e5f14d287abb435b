"""The usage ledger service: record one metered call, with its cost computed from the model's pricing."""
from __future__ import annotations

from dataclasses import dataclass

from app.extensions import db
from app.models import LlmModel, UsageRecord


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens the provider served from its cache


def cost_of(model: LlmModel | None, usage: Usage) -> float:
    """Cost in the pricing's currency. Cached prompt tokens use the cached price when the model has one."""
    if model is None:
        return 0.0
    cached_price = model.cached_input_per_1k if model.cached_input_per_1k is not None else model.input_per_1k
    uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
    cost = (
        uncached * model.input_per_1k
        + usage.cached_tokens * cached_price
        + usage.completion_tokens * model.output_per_1k
    ) / 1000.0
    return round(cost, 10)


def record_usage(
    *,
    entity_type: str,
    entity_id: str | None,
    operation: str,
    model: LlmModel | None,
    usage: Usage,
    latency_ms: float | None = None,
    api_key_id: str | None = None,
    details: dict | None = None,
    commit: bool = True,
) -> UsageRecord:
    """Add one ledger row. `commit=False` lets a caller write it in its own transaction."""
    record = UsageRecord(
        entity_type=entity_type,
        entity_id=entity_id,
        operation=operation,
        model_ref=model.id if model else None,
        model_name=model.model_id if model else None,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cost=cost_of(model, usage),
        latency_ms=latency_ms,
        api_key_id=api_key_id,
        details=details or {},
    )
    db.session.add(record)
    if commit:
        db.session.commit()
    return record
