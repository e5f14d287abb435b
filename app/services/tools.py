"""RAG tools and retrieval tools: CRUD, and the indexes their settings name on each source.

Both kinds share index and retrieval settings; a RAG tool adds a prompt template, a chat model and an
answer mode. Creating a tool or changing its index settings finds or creates the matching index on every
source and builds it in the background; the tool is `ready` once all its indexes are.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.common.pagination import paginate
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.models import KnowledgeIndex, KnowledgeSource, LlmModel, PromptTemplate, RagTool, RetrievalTool
from app.services import indexes as index_service
from app.services.llm_models import default_model, resolve_model

INDEX_FIELDS = ("embedding_model_id", "chunker", "chunk_size", "chunk_overlap")
RETRIEVAL_DEFAULTS: dict[str, Any] = {
    "mode": "hybrid",
    "fusion": None,  # None = the engine's measured default
    "top_k": 5,
    "candidate_k": None,
    "rrf_k": None,
    "dense_weight": None,
    "score_threshold": None,
    "expand_neighbors": 0,
    "rerank_model_id": None,
}
KINDS = {"rag": RagTool, "retrieval": RetrievalTool}
LABEL = {"rag": "RAG tool", "retrieval": "Retrieval tool"}


def get_tool(kind: str, tool_id: str):
    tool = db.session.get(KINDS[kind], tool_id)
    if tool is None:
        raise NotFound(f"{LABEL[kind]} {tool_id} does not exist.", details={"id": tool_id})
    return tool


def list_tools(kind: str, args: dict) -> dict:
    return paginate(select(KINDS[kind]), KINDS[kind], args)


def _source_ids(body: dict) -> list[str] | None:
    ids = body.pop("knowledge_source_ids", None)
    single = body.pop("knowledge_source_id", None)
    if ids is None and single is None:
        return None
    ids = list(ids or []) + ([single] if single and single not in (ids or []) else [])
    if not ids:
        raise ValidationFailed("Name at least one knowledge source.",
                               details={"fields": {"knowledge_source_ids": ["empty"]}})
    found = set(db.session.execute(select(KnowledgeSource.id).where(KnowledgeSource.id.in_(ids))).scalars())
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise ValidationFailed(f"Unknown knowledge sources: {', '.join(unknown)}.",
                               details={"fields": {"knowledge_source_ids": unknown}, "unknown_sources": unknown})
    return list(dict.fromkeys(ids))


def _check_name_free(kind: str, name: str, exclude_id: str | None = None) -> None:
    model = KINDS[kind]
    query = select(model.id).where(model.name == name)
    if exclude_id:
        query = query.where(model.id != exclude_id)
    if db.session.execute(query).first():
        raise Conflict(f"A {LABEL[kind]} named '{name}' already exists.", code="duplicate_name", details={"name": name})


def _model_of_kind(reference: str | None, kind: str, field: str) -> LlmModel | None:
    return None if reference is None else resolve_model(reference, kind, field)


def _apply_rag_fields(tool: RagTool, body: dict) -> None:
    if "prompt_template_id" in body:
        template_id = body.pop("prompt_template_id")
        if template_id is not None:
            template = db.session.get(PromptTemplate, template_id)
            if template is None or template.type != "rag":
                raise ValidationFailed(f"prompt_template_id {template_id!r} is not a rag template.",
                                       details={"fields": {"prompt_template_id": ["unknown or not type rag"]}})
        tool.prompt_template_id = template_id
    if "model_id" in body:
        model = _model_of_kind(body.pop("model_id"), "chat", "model_id")
        tool.model_id = model.id if model else None
    if tool.model_id is None:
        chat = default_model("chat")
        tool.model_id = chat.id if chat else None
    if "answer_mode" in body:
        tool.answer_mode = body.pop("answer_mode")


def _apply(kind: str, tool, body: dict) -> bool:
    """Set fields from a request body; returns whether the index settings changed."""
    body = dict(body)
    if "name" in body:
        _check_name_free(kind, body["name"], exclude_id=tool.id)
        tool.name = body.pop("name")
    if "description" in body:
        tool.description = body.pop("description")
    sources = _source_ids(body)
    if sources is not None:
        tool.knowledge_source_ids = sources
    if not tool.knowledge_source_ids:
        raise ValidationFailed("Name at least one knowledge source (knowledge_source_id or knowledge_source_ids).",
                               details={"fields": {"knowledge_source_ids": ["required"]}})
    for field in ("embedding_model", "embedding_model_id"):  # the contract's name, and Magnet's
        if body.get(field) is not None:  # resolved here, so a bad one is reported under the field sent
            body["embedding_model_id"] = resolve_model(body.pop(field), "embedding", field).id
    before = {f: getattr(tool, f, None) for f in INDEX_FIELDS}
    requested = {f: body.pop(f) for f in INDEX_FIELDS if f in body}
    settings = index_service.validate_settings({**{k: v for k, v in before.items() if v is not None}, **requested})
    for field, value in settings.items():
        setattr(tool, field, value)
    retrieval = {**RETRIEVAL_DEFAULTS, **(tool.retrieval or {})}
    for key in RETRIEVAL_DEFAULTS:
        if key in body:
            retrieval[key] = body.pop(key)
    if retrieval.get("rerank_model_id"):
        retrieval["rerank_model_id"] = _model_of_kind(retrieval["rerank_model_id"], "rerank", "rerank_model_id").id
    from app.services.retrieval import check_settings

    check_settings(retrieval)
    tool.retrieval = retrieval
    if kind == "rag":
        _apply_rag_fields(tool, body)
    if sources is not None:
        return True
    return before != {f: getattr(tool, f) for f in INDEX_FIELDS}


def create_tool(kind: str, body: dict):
    _check_name_free(kind, body["name"])
    tool = KINDS[kind]()
    _apply(kind, tool, body)
    db.session.add(tool)
    db.session.flush()
    _ensure_indexes(tool)
    db.session.commit()
    return tool


def update_tool(kind: str, tool_id: str, body: dict):
    tool = get_tool(kind, tool_id)
    if _apply(kind, tool, body):
        _ensure_indexes(tool)
    db.session.commit()
    return tool


def delete_tool(kind: str, tool_id: str) -> None:
    from app.services.agents import agents_using

    tool = get_tool(kind, tool_id)
    users = agents_using(tool.id)
    if users:
        raise Conflict(f"{tool.name} is used by agents: {', '.join(users)}.", code="in_use", details={"agents": users})
    db.session.delete(tool)
    db.session.commit()


def tools_using_source(source_id: str) -> list:
    """The RAG and retrieval tools that search a source (its id is in their knowledge_source_ids)."""
    found = []
    for model in KINDS.values():
        found.extend(t for t in db.session.execute(select(model).order_by(model.name)).scalars()
                     if source_id in (t.knowledge_source_ids or []))
    return found


def delete_tools(doomed: list) -> None:
    """Delete these tools in the caller's transaction; 409 in_use naming the agents that call any of them."""
    from app.services.agents import agents_using

    users = sorted({agent for tool in doomed for agent in agents_using(tool.id)})
    if users:
        raise Conflict(f"Tools {', '.join(t.name for t in doomed)} are used by agents: {', '.join(users)}.",
                       code="in_use", details={"agents": users, "tools": [t.id for t in doomed]})
    for tool in doomed:
        db.session.delete(tool)


def _ensure_indexes(tool) -> None:
    """Find or create each source's index for the tool's settings; new ones over synced documents are built."""
    settings = {f: getattr(tool, f) for f in INDEX_FIELDS}
    for source_id in tool.knowledge_source_ids:
        source = db.session.get(KnowledgeSource, source_id)
        index, created = index_service.find_or_create(source, settings)
        if created:
            db.session.commit()
            index_service.request_build(index)


def tool_indexes(tool) -> list[KnowledgeIndex]:
    settings = {f: getattr(tool, f) for f in INDEX_FIELDS}
    found = db.session.execute(
        select(KnowledgeIndex).filter_by(**settings).where(KnowledgeIndex.source_id.in_(tool.knowledge_source_ids))
    ).scalars().all()
    return list(found)


def readiness(tool) -> dict:
    """`ready` when every index is built; otherwise `building` (with progress) or `failed`."""
    found = tool_indexes(tool)
    missing = len(tool.knowledge_source_ids) - len(found)
    statuses = {index.status for index in found}
    held = index_service.contents(found)
    status = "failed" if "failed" in statuses else "building" if missing or "building" in statuses else "ready"
    return {
        "status": status,
        "index_ids": [index.id for index in found],
        "progress": {"done": sum(c["documents"] for c in held.values()),
                     "total": sum(c["expected"] for c in held.values())},
        "errors": [index.error for index in found if index.error],
    }
