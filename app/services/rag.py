"""Answering a query with a RAG tool: retrieve, then answer only from the passages, with citations.

When nothing relevant is retrieved the answer is an explicit no-answer (`answer: null` plus a reason),
never an invented one. Every call is metered (usage ledger) and traced (GET /api/traces/{id}).
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select

from app.errors import MagnetError
from app.extensions import db
from app.models import Document, LlmModel, PromptTemplate, Trace
from app.services import retrieval, tools
from app.services.seed import DEFAULT_RAG_TEMPLATE
from app.services.sse import DONE, sse_event
from app.services.usage import Usage, record_usage

CITATION = re.compile(r"\[(\d{1,3})\]")
CONTEXT_CHARS_PER_PASSAGE = 4000


@dataclass
class QueryRun:
    """One query in progress: what was retrieved, answered, spent and timed."""

    tool: object
    query: str
    api_key_id: str | None
    results: list[dict] = field(default_factory=list)
    answer: str | None = None
    citations: list[dict] = field(default_factory=list)
    no_answer_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    latency_ms: dict = field(default_factory=dict)
    spans: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def payload(self, trace_id: str | None) -> dict:
        return {
            "query": self.query,
            "results": self.results,
            "answer": self.answer,
            "citations": self.citations,
            "no_answer_reason": self.no_answer_reason,
            "scores": [r["scores"] for r in self.results],
            "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens,
                      "total_tokens": self.usage.prompt_tokens + self.usage.completion_tokens, "cost": self.cost},
            "latency_ms": self.latency_ms,
            "trace_id": trace_id,
        }


def _enrich(hits) -> list[dict]:
    """Results with `metadata.source` (the document's path or URL) and its title, in one query."""
    results = [retrieval.hit_payload(hit) for hit in hits]
    ids = {r["metadata"].get("document_id") for r in results} - {None}
    if ids:
        rows = db.session.execute(
            select(Document.id, Document.external_id, Document.title, Document.name).where(Document.id.in_(ids))
        ).all()
        by_id = {row.id: row for row in rows}
        for result in results:
            row = by_id.get(result["metadata"].get("document_id"))
            if row is not None:
                result["metadata"].setdefault("source", row.external_id)
                result["metadata"].setdefault("title", row.title or row.name)
                result["metadata"].setdefault("name", row.name)
    return results


def retrieve(run: QueryRun, *, top_k: int | None, filters: dict | None, overrides: dict | None = None) -> None:
    """Search the tool's indexes; `overrides` (mode, fusion, ...) replace its stored retrieval settings for
    this query only (the console's playground compares settings with them)."""
    result, settings = retrieval.search(run.tool, run.query, top_k=top_k, filters=filters, overrides=overrides,
                                        api_key_id=run.api_key_id)
    run.results = _enrich(result.hits)
    run.latency_ms.update({f"retrieval_{k}": round(v, 2) for k, v in result.timings_ms.items()})
    run.spans.append({
        "stage": "retrieval",
        "ms": round(sum(result.timings_ms.values()), 2),
        "input": {"query": run.query, "filters": filters, "settings": settings.__dict__},
        "output": {"hits": [{"chunk_id": h.chunk_id, "score": h.score, "scores": h.scores, "ranks": h.ranks}
                            for h in result.hits], "trace": result.trace},
    })
    if not run.results:
        run.no_answer_reason = "no_relevant_passages"


def _numbered_context(results: list[dict]) -> str:
    parts = []
    for n, result in enumerate(results, start=1):
        where = result["metadata"].get("source") or result["metadata"].get("document_id", "")
        page, section = result["metadata"].get("page"), result["metadata"].get("section")
        label = ", ".join(str(part) for part in (where, section, page and f"page {page}") if part)
        parts.append(f"[{n}] ({label})\n{result['content'][:CONTEXT_CHARS_PER_PASSAGE]}")
    return "\n\n".join(parts)


def _citations_from_markers(text: str, results: list[dict]) -> list[dict]:
    """Each [n] in the answer, mapped to the result it cites (markers outside the range are ignored)."""
    seen, citations = set(), []
    for match in CITATION.finditer(text):
        n = int(match.group(1))
        if 1 <= n <= len(results) and n not in seen:
            seen.add(n)
            meta = results[n - 1]["metadata"]
            citations.append({"index": n, "result": n - 1, "chunk_id": meta.get("chunk_id"),
                              "document_id": meta.get("document_id"), "source": meta.get("source"),
                              "section": meta.get("section"), "page": meta.get("page")})
    return citations


def _prompt(tool) -> str:
    template = db.session.get(PromptTemplate, tool.prompt_template_id) if tool.prompt_template_id else None
    return template.template if template else DEFAULT_RAG_TEMPLATE["template"]


def _render(template: str, context: str, query: str) -> str:
    values = {"context": context, "query": query}
    return re.sub(r"\{\{\s*(context|query)\s*\}\}", lambda m: values[m.group(1)], template)


def _chat_model(tool) -> LlmModel | None:
    return db.session.get(LlmModel, tool.model_id) if getattr(tool, "model_id", None) else None


def _uses_extractive(tool, model: LlmModel | None) -> bool:
    return tool.answer_mode == "extractive" or model is None or model.provider == "local"


def answer_extractively(run: QueryRun) -> None:
    from app.runtime.extractive import ExtractiveAnswerer

    started = time.perf_counter()
    text, citations = ExtractiveAnswerer().answer(run.query, [r["content"] for r in run.results])
    ms = (time.perf_counter() - started) * 1000
    run.latency_ms["generation"] = round(ms, 2)
    if not text:
        run.no_answer_reason = "no_supporting_passage"
        return
    run.answer = text
    run.citations = _citations_from_markers(text, run.results)
    run.spans.append({"stage": "generation", "ms": round(ms, 2), "input": {"model": "local-extractive"},
                      "output": {"answer": text, "citations": citations}})


def _generation_request(run: QueryRun):
    from app.runtime.llm_types import ChatMessage

    prompt = _render(_prompt(run.tool), _numbered_context(run.results), run.query)
    return [ChatMessage(role="user", content=prompt)], prompt


def _meter(run: QueryRun, model: LlmModel, result, prompt: str) -> None:
    run.usage = result.usage
    record = record_usage(entity_type="rag_tool", entity_id=run.tool.id, operation="chat", model=model,
                          usage=result.usage, latency_ms=result.latency_ms, api_key_id=run.api_key_id)
    run.cost = record.cost
    run.latency_ms["generation"] = round(result.latency_ms, 2)
    run.spans.append({"stage": "generation", "ms": round(result.latency_ms, 2),
                      "input": {"model": model.name, "prompt": prompt[:20000]},
                      "output": {"answer": result.text, "finish_reason": result.finish_reason,
                                 "usage": result.usage.__dict__}})


def answer_with_model(run: QueryRun, model: LlmModel) -> None:
    from app.runtime.providers import client_for

    messages, prompt = _generation_request(run)
    db.session.commit()  # no transaction open during the provider call
    result = client_for(model).complete(messages, temperature=0.0, max_tokens=1024)
    run.answer = result.text.strip() or None
    run.citations = _citations_from_markers(run.answer or "", run.results)
    if run.answer is None:
        run.no_answer_reason = "empty_model_answer"
    _meter(run, model, result, prompt)


def save_trace(run: QueryRun) -> str:
    run.latency_ms["total"] = round((time.perf_counter() - run.started) * 1000, 2)
    trace = Trace(entity_type="rag_tool" if hasattr(run.tool, "answer_mode") else "retrieval_tool",
                  entity_id=run.tool.id, api_key_id=run.api_key_id, query=run.query,
                  spans=run.spans, total_ms=run.latency_ms["total"])
    db.session.add(trace)
    db.session.commit()
    return trace.id


def query(tool_id: str, body: dict, api_key_id: str | None) -> dict:
    tool = tools.get_tool("rag", tool_id)
    run = QueryRun(tool=tool, query=body["query"], api_key_id=api_key_id)
    retrieve(run, top_k=body.get("top_k"), filters=body.get("filters"))
    answer(run)
    return run.payload(save_trace(run))


def answer(run: QueryRun) -> None:
    """Answer from what was retrieved, as the tool's answer mode and chat model say (nothing if none)."""
    if run.results and run.tool.answer_mode != "none":
        model = _chat_model(run.tool)
        if _uses_extractive(run.tool, model):
            answer_extractively(run)
        else:
            answer_with_model(run, model)


def _sse(event: str, data: dict) -> str:
    return sse_event({"event": event, **data})


def stream(tool_id: str, body: dict, api_key_id: str | None) -> Iterator[str]:
    """SSE: retrieval.completed, text.chunk..., message.completed (or error), then [DONE].

    Validation and readiness errors are raised before the first byte so they get a normal error
    status; anything that fails later is an `error` event, since the 200 has already been sent.
    """
    tool = tools.get_tool("rag", tool_id)
    run = QueryRun(tool=tool, query=body["query"], api_key_id=api_key_id)
    retrieve(run, top_k=body.get("top_k"), filters=body.get("filters"))

    def events() -> Iterator[str]:
        try:
            yield _sse("retrieval.completed", {"results": run.results})
            if run.results and tool.answer_mode != "none":
                model = _chat_model(tool)
                if _uses_extractive(tool, model):
                    answer_extractively(run)
                    if run.answer:
                        yield _sse("text.chunk", {"delta": run.answer})
                else:
                    yield from _stream_model(run, model)
            yield _sse("message.completed", run.payload(save_trace(run)))
        except MagnetError as exc:
            db.session.rollback()
            yield _sse("error", {"code": exc.code, "message": exc.message})
        except Exception:
            db.session.rollback()
            yield _sse("error", {"code": "internal_error", "message": "The answer could not be completed."})
        yield DONE

    return events()


def _stream_model(run: QueryRun, model: LlmModel) -> Iterator[str]:
    from app.runtime.llm_types import Done, TextDelta
    from app.runtime.providers import client_for

    messages, prompt = _generation_request(run)
    db.session.commit()
    parts = []
    for event in client_for(model).stream(messages, temperature=0.0, max_tokens=1024):
        if isinstance(event, TextDelta):
            parts.append(event.text)
            yield _sse("text.chunk", {"delta": event.text})
        elif isinstance(event, Done):
            run.answer = "".join(parts).strip() or None
            run.citations = _citations_from_markers(run.answer or "", run.results)
            if run.answer is None:
                run.no_answer_reason = "empty_model_answer"
            _meter(run, model, event.result, prompt)
