"""The usage ledger service: record one metered call, with its cost computed from the model's pricing.

Calls made on behalf of a conversation (its agent's model calls, the tools it runs, their embeddings and
answers) are tagged with the conversation and app integration through `metering(...)`, a context
variable, so the services deep inside a turn need not pass those ids along.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

from app.auth import current_user_id
from app.common.usage import Usage  # re-exported: services record it with record_usage
from app.extensions import db
from app.models import LlmModel, UsageRecord


class Tally:
    """What the ledger rows of one unit of work add up to (an agent turn: its model calls, its tools'
    answers and embeddings). Shared by the threads the work runs tools in, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.prompt_tokens = self.completion_tokens = self.calls = 0
        self.cost = 0.0

    def add(self, record: UsageRecord) -> None:
        with self._lock:
            self.prompt_tokens += record.prompt_tokens
            self.completion_tokens += record.completion_tokens
            self.cost = round(self.cost + record.cost, 10)
            self.calls += 1


@dataclass(frozen=True)
class MeteringContext:
    conversation_id: str | None = None
    integration_id: str | None = None
    api_key_id: str | None = None
    user_id: str | None = None  # a signed-in user's calls (a browser session has no key)
    tally: Tally | None = field(default=None, compare=False)


_NO_CONTEXT = MeteringContext()
# The default is None (not a MeteringContext): ContextVar defaults should be immutable, and the
# dataclass holds a mutable Tally.
_context: ContextVar[MeteringContext | None] = ContextVar("magnet_metering", default=None)


@contextlib.contextmanager
def metering(**ids: str | None) -> Iterator[MeteringContext]:
    """Tag every ledger row recorded inside the block with these ids (nested blocks add to the outer)."""
    token = _context.set(replace(current_metering(), **ids))
    try:
        yield current_metering()
    finally:
        _context.reset(token)


def current_metering() -> MeteringContext:
    return _context.get() or _NO_CONTEXT


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
    context = current_metering()
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
        api_key_id=api_key_id or context.api_key_id,
        user_id=context.user_id or current_user_id(),
        conversation_id=context.conversation_id,
        integration_id=context.integration_id,
        details=details or {},
    )
    db.session.add(record)
    if context.tally is not None:
        context.tally.add(record)
    if commit:
        db.session.commit()
    return record


def record_writer_embeddings(stats, *, entity_type: str, entity_id: str, model: LlmModel | None,
                             details: dict, commit: bool = False) -> None:
    """One row for what an index writer embedded (its `WriterStats`: cache misses only). Nothing when it
    embedded nothing (an unchanged re-sync, only cache hits): a 0-token row says nothing."""
    if not stats.embedded_texts:
        return
    details = {**details, "chunks_embedded": stats.embedded_texts, "cache_hits": stats.cache_hits}
    if stats.tokens_estimated:
        details["tokens_estimated"] = True
    record_usage(entity_type=entity_type, entity_id=entity_id, operation="embedding", model=model,
                 usage=Usage(prompt_tokens=stats.embedded_tokens), latency_ms=round(stats.embed_seconds * 1000.0, 3),
                 details=details, commit=commit)
