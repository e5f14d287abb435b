"""Retrieval for tools: the knowledge engine's Retriever over the tool's indexes, with request overrides."""
from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.models import LlmModel, RagTool
from app.services import engine, tools
from app.services.usage import Usage, record_usage
from knowledge.filters import FilterError, validate_filter
from knowledge.retrieval import RetrievalResult, RetrievalSettings, Retriever
from knowledge.types import ModelUsage

_SETTING_NAMES = {f.name for f in dataclass_fields(RetrievalSettings)}


def settings_for(retrieval: dict, overrides: dict | None = None) -> RetrievalSettings:
    """Engine settings from a tool's stored settings plus per-request overrides (None = engine default)."""
    merged = {**retrieval, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    kwargs = {k: v for k, v in merged.items() if k in _SETTING_NAMES and v is not None}
    try:
        settings = RetrievalSettings(**kwargs)
        settings.validate()
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"Invalid retrieval settings: {exc}", details={"fields": {"retrieval": [str(exc)]}}) from exc
    return settings


def check_settings(retrieval: dict) -> None:
    settings_for(retrieval)


def check_filters(filters: Any) -> None:
    if filters is None:
        return
    try:
        validate_filter(filters)
    except FilterError as exc:
        raise ValidationFailed(f"Invalid filters: {exc}", code="invalid_filter",
                               details={"fields": {"filters": [str(exc)]}}) from exc


def retriever_for(tool) -> Retriever:
    """A retriever over the tool's indexes; 409 with progress while any index is still building."""
    state = tools.readiness(tool)
    if state["status"] != "ready":
        raise Conflict(
            f"{tool.name} is not ready: its index is {state['status']}.",
            code="index_not_ready",
            details={"status": state["status"], "progress": state["progress"], "errors": state["errors"]},
        )
    indexes = tools.tool_indexes(tool)
    model = db.session.get(LlmModel, tool.embedding_model_id)
    pairs = []
    for index in indexes:
        target = engine.index_target(index)
        pairs.append((target.vectors, target.lexical))
    reranker = None
    rerank_id = (tool.retrieval or {}).get("rerank_model_id")
    if rerank_id:
        reranker = engine.reranker_for(db.session.get(LlmModel, rerank_id))
    return Retriever(engine.embedder_for(model), pairs, reranker=reranker)


def search(tool, query: str, *, top_k: int | None = None, filters: dict | None = None,
           overrides: dict | None = None, api_key_id: str | None = None) -> tuple[RetrievalResult, RetrievalSettings]:
    """Search a tool's indexes; the query embedding and any reranking are metered in the usage ledger."""
    check_filters(filters)
    settings = settings_for(tool.retrieval or {}, {**(overrides or {}), "top_k": top_k})
    # Build the retriever (database reads) before searching, then search with no transaction open.
    retriever = retriever_for(tool)
    meter = _Meter(tool)  # plain values: the commit below expires the tool
    db.session.commit()
    result = retriever.search(query, settings, filters=filters)
    meter.record(result, api_key_id)
    return result, settings


class _Meter:
    """One ledger row per model stage a search ran (query embedding, rerank), written after the search."""

    def __init__(self, tool) -> None:
        self.entity_type = "rag_tool" if isinstance(tool, RagTool) else "retrieval_tool"
        self.entity_id = tool.id
        self.embedding_model_id = tool.embedding_model_id
        self.rerank_model_id = (tool.retrieval or {}).get("rerank_model_id")

    def record(self, result: RetrievalResult, api_key_id: str | None) -> None:
        embed, rerank = result.usage.get("embed"), result.usage.get("rerank")
        if embed is not None:
            details = {}
            if embed.cache_hits:
                # Served from our embedding cache: no model ran, so 0 tokens and no cost. Not cached_tokens:
                # those are the provider-discounted part of prompt_tokens, and are billed.
                details = {"cache_hit": True, "query_tokens": embed.cached_tokens}
            self._add("embedding", self.embedding_model_id, embed, result.timings_ms.get("embed"), api_key_id, details)
        if rerank is not None:
            self._add("rerank", self.rerank_model_id, rerank, result.timings_ms.get("rerank"), api_key_id,
                      {"pairs": rerank.inputs})
        if embed is not None or rerank is not None:
            db.session.commit()

    def _add(self, operation: str, model_id: str | None, usage: ModelUsage, latency_ms: float | None,
             api_key_id: str | None, details: dict) -> None:
        if usage.estimated:
            details["tokens_estimated"] = True
        record_usage(
            entity_type=self.entity_type, entity_id=self.entity_id, operation=operation,
            model=db.session.get(LlmModel, model_id) if model_id else None,
            usage=Usage(prompt_tokens=usage.tokens), latency_ms=latency_ms, api_key_id=api_key_id,
            details=details, commit=False,
        )


def hit_payload(hit) -> dict:
    """A result as the API shows it: content, score, metadata (source, page, ...), per-stage scores."""
    metadata = dict(hit.metadata)
    metadata.setdefault("chunk_id", hit.chunk_id)
    return {
        "content": hit.text,
        "score": hit.score,
        "metadata": metadata,
        "scores": hit.scores,
        "ranks": hit.ranks,
    }
