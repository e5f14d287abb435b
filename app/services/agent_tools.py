"""An agent's tools as the runtime sees them: function schemas and the code that runs each call.

RAG tools become `query` (a grounded answer plus its passages), retrieval tools `search` (passages),
API tools their own name with their input schema. With several tools of one kind the names carry the
tool's name (`query_hr_policies`), since a model tells functions apart by name only.

The runtime runs each call in a worker thread (for its timeout), so a runner opens its own app context
and loads the tool again by id: ORM objects belong to the session of the thread that loaded them.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

from flask import Flask, current_app

from app.errors import ValidationFailed
from app.extensions import db
from app.models import Agent, ApiTool, RagTool
from app.runtime.agent import AgentTool, Passage, Progress, ToolOutput
from app.runtime.llm_types import ToolSpec
from app.services import agent_builtin_tools, agents, api_tools, rag, tools
from app.services.usage import Usage, record_usage

MAX_TOP_K = 20
_NAME_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_QUERY_PARAMETERS = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "A standalone question or search query: restate what "
                                                   "the conversation so far implies, do not say 'it' or 'that'."},
        "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K,
                  "description": "How many passages to return (default: the tool's setting)."},
    },
    "required": ["query"],
}


def build(agent: Agent, *, api_key_id: str | None, local: bool, conversation_id: str | None = None) -> list[AgentTool]:
    """The agent's tools, in its order, then the built-in tools it opted into (by name in its `tools`).
    Tools deleted since the agent was saved are left out (deleting a tool an agent uses is refused, so
    this takes a database edited by hand)."""
    try:
        rows = agents.resolve_tools(agent.tools or [])
    except ValidationFailed as exc:
        missing = set(exc.details.get("unknown_tools") or [])
        current_app.logger.warning("agent %s lists tools that do not exist: %s", agent.id, sorted(missing))
        rows = agents.resolve_tools([t for t in dict.fromkeys(agent.tools or []) if t not in missing])
    app = current_app._get_current_object()
    kinds = Counter(_kind(row) for row in rows)
    built, taken = [], set()
    for row in rows:
        kind = _kind(row)
        name = _unique(_name(row, kind, several=kinds[kind] > 1), taken)
        if kind == "api":
            built.append(AgentTool(_api_spec(row, name), row.id, kind, _api_runner(app, row.id, api_key_id, agent.id)))
        else:
            spec = ToolSpec(name=name, description=_knowledge_description(row, kind), parameters=_QUERY_PARAMETERS)
            answer = kind == "rag" and not local  # the local model quotes the passages itself
            built.append(AgentTool(spec, row.id, kind, _knowledge_runner(app, kind, row.id, answer, api_key_id, agent.id)))
    if "handoff_to_human" in (agent.tools or []) and conversation_id is not None:
        built.append(AgentTool(HANDOFF_SPEC, "handoff_to_human", "builtin",
                               _handoff_runner(app, conversation_id, agent.id)))
    return built + agent_builtin_tools.build(agent, api_key_id=api_key_id)


HANDOFF_SPEC = ToolSpec(
    name="handoff_to_human",
    description="Hand this task to a human reviewer when you cannot or should not do it yourself (a decision, "
                "an action in the real world, information you lack). A person answers later in this "
                "conversation; tell the user it was handed off.",
    parameters={
        "type": "object",
        "properties": {
            "title": {"type": "string", "description": "A short title for the task"},
            "instructions": {"type": "string", "description": "What the person should do, with the context "
                                                              "they need (they do not see this conversation)"},
            "objective": {"type": "string", "description": "What a good outcome is"},
        },
        "required": ["title", "instructions", "objective"],
    },
)
_HANDOFF_LIMITS = {"title": 200, "instructions": 20_000, "objective": 5_000}


def _handoff_runner(app: Flask, conversation_id: str, agent_id: str):
    def run(arguments: dict, progress: Progress) -> ToolOutput:
        from app.services import handoff_requests

        for name, limit in _HANDOFF_LIMITS.items():
            value = arguments.get(name)
            if not isinstance(value, str) or not value.strip() or len(value) > limit:
                raise ValidationFailed(f"'{name}' must be a non-empty string of at most {limit} characters.",
                                       details={"fields": {name: ["required"]}})
        with app.app_context():
            progress("Handing the task to a person")
            request = handoff_requests.new_request(
                title=arguments["title"].strip(), instructions=arguments["instructions"].strip(),
                objective=arguments["objective"].strip(), conversation_id=conversation_id, actor=agent_id)
            db.session.commit()
            request_id = request.id
        return ToolOutput(text=f"Handed off to a human reviewer as request {request_id}. Tell the user that a "
                               "person will answer here in this conversation; do not answer the task yourself.",
                          data={"request_id": request_id})
    return run


def _kind(row: Any) -> str:
    return "api" if isinstance(row, ApiTool) else "rag" if isinstance(row, RagTool) else "retrieval"


def _name(row: Any, kind: str, *, several: bool) -> str:
    slug = _NAME_UNSAFE.sub("_", row.name.lower()).strip("_")[:48] or kind
    if kind == "api":
        return slug
    base = "query" if kind == "rag" else "search"
    return f"{base}_{slug}" if several else base


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _knowledge_description(row: Any, kind: str) -> str:
    what = ("Ask the knowledge base '{}' a question: returns an answer grounded in its documents and the "
            "numbered passages it used." if kind == "rag" else
            "Search the knowledge base '{}': returns the most relevant numbered passages.").format(row.name)
    return f"{what} {row.description}".strip() if row.description else what


def _api_spec(row: ApiTool, name: str) -> ToolSpec:
    schema = {k: v for k, v in (row.input_schema or {}).items() if k not in ("$schema", "$id")}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})  # OpenAI rejects object schemas without properties
    description = row.description or f"Call the HTTP API '{row.name}' ({row.method})."
    return ToolSpec(name=name, description=description, parameters=schema)


def _query_arguments(arguments: dict) -> tuple[str, int | None]:
    query, top_k = arguments.get("query"), arguments.get("top_k")
    if not isinstance(query, str) or not query.strip():
        raise ValidationFailed("'query' must be a non-empty string.", details={"fields": {"query": ["required"]}})
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K):
        raise ValidationFailed(f"'top_k' must be an integer from 1 to {MAX_TOP_K}.",
                               details={"fields": {"top_k": ["out of range"]}})
    return query.strip(), top_k


def _knowledge_runner(app: Flask, kind: str, tool_id: str, answer: bool, api_key_id: str | None, agent_id: str):
    def run(arguments: dict, progress: Progress) -> ToolOutput:
        query, top_k = _query_arguments(arguments)
        with app.app_context():
            started = time.monotonic()
            tool = tools.get_tool(kind, tool_id)
            progress(f"Searching {tool.name}")
            query_run = rag.QueryRun(tool=tool, query=query, api_key_id=api_key_id)
            rag.retrieve(query_run, top_k=top_k, filters=None)
            progress(f"Found {len(query_run.results)} passages")
            if answer and query_run.results:
                progress("Writing an answer from the passages")
                rag.answer(query_run)
            trace_id = rag.save_trace(query_run)
            passages = [_passage(r) for r in query_run.results]
            record_usage(entity_type=f"{kind}_tool", entity_id=tool_id, operation="tool", model=None,
                         usage=Usage(), latency_ms=round((time.monotonic() - started) * 1000, 1),
                         api_key_id=api_key_id, details={"agent_id": agent_id, "tool": tool.name,
                                                         "trace_id": trace_id})
            text = _knowledge_text(query_run, answer)
            return ToolOutput(text=text, passages=passages,
                              data={"trace_id": trace_id, "results": len(passages), "answer": query_run.answer})
    return run


def _knowledge_text(query_run: rag.QueryRun, answered: bool) -> str:
    if not query_run.results:
        return "No passage in this knowledge base matches the query."
    if answered and query_run.answer:
        return f"Answer: {query_run.answer}\n\nPassages:"
    return "Passages:"


def _passage(result: dict) -> Passage:
    meta = result["metadata"]
    return Passage(text=result["content"], source=meta.get("source"), document_id=meta.get("document_id"),
                   chunk_id=meta.get("chunk_id"), title=meta.get("title"), section=meta.get("section"),
                   page=meta.get("page"))


def _api_runner(app: Flask, tool_id: str, api_key_id: str | None, agent_id: str):
    def run(arguments: dict, progress: Progress) -> ToolOutput:
        with app.app_context():
            tool = api_tools.get_api_tool(tool_id)
            progress(f"Calling {tool.method} {tool.name}")
            result = api_tools.call_tool(tool, arguments, api_key_id=api_key_id,
                                         usage_details={"agent_id": agent_id})
            db.session.commit()
        body = result["body"]
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=str)
        return ToolOutput(text=f"HTTP {result['status_code']}{' (truncated)' if result.get('truncated') else ''}\n{text}",
                          data={"status_code": result["status_code"], "latency_ms": result.get("latency_ms")})
    return run
