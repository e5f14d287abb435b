"""Use cases for agents: a chat model, a system prompt, and the tools the agent may call."""
from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select

from app.common.pagination import paginate
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.models import Agent, ApiTool, LlmModel, RagTool, RetrievalTool
from app.services import agent_hierarchy, agent_soul, llm_models

# Tool ids carry their kind as a prefix (`apitool_…`); each kind lives in its own table. RAG tools
# (`rag_`) and retrieval tools (`ret_`) are added here when they exist.
TOOL_TABLES: dict[str, Any] = {"apitool": ApiTool, "rag": RagTool, "ret": RetrievalTool}
# Tools built into Magnet, listed in an agent's `tools` by name to opt in (app.services.agent_builtin_tools
# and, for handoff_to_human, app.services.agent_tools).
BUILTIN_TOOLS = ("remember", "recall", "ask_agent", "handoff_to_human")


def agents_using(tool_id: str) -> list[str]:
    """Names of the agents whose tools include `tool_id` (tools are a JSON list, so filter here)."""
    rows = db.session.execute(select(Agent.name, Agent.tools)).all()
    return sorted(name for name, tools in rows if tool_id in (tools or []))


def list_agents(args: dict) -> dict:
    query = select(Agent)
    for name in ("status", "model_id", "role"):
        if args.get(name):
            query = query.where(getattr(Agent, name) == args[name])
    return paginate(query, Agent, args)


def get_agent(agent_id: str) -> Agent:
    agent = db.session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"Agent {agent_id} does not exist.", details={"id": agent_id})
    return agent


def create_agent(body: dict) -> Agent:
    """Create an agent; without a model_id it gets the default chat model."""
    body = dict(body)
    _check_name_free(body["name"])
    if body.get("model_id") is None:
        body["model_id"] = _default_chat_model().id
    else:
        body["model_id"] = check_chat_model(body["model_id"]).id
    resolve_tools(body.get("tools") or [])
    if body.get("reports_to") is not None:
        body["reports_to"] = agent_hierarchy.check_manager(body["reports_to"], None)
    agent = Agent(**body)
    db.session.add(agent)
    db.session.flush()
    agent_soul.record(agent)
    db.session.commit()
    return agent


def update_agent(agent_id: str, body: dict) -> Agent:
    """Change only the fields sent; a new model or tool list is validated like on create."""
    agent = get_agent(agent_id)
    if "name" in body:
        _check_name_free(body["name"], exclude_id=agent.id)
    body = dict(body)
    if "model_id" in body:
        body["model_id"] = check_chat_model(body["model_id"]).id
    if "tools" in body:
        resolve_tools(body["tools"])
    if body.get("reports_to") is not None:
        body["reports_to"] = agent_hierarchy.check_manager(body["reports_to"], agent.id)
    for key, value in body.items():
        setattr(agent, key, value)
    if "system_prompt" in body:
        agent_soul.record(agent)
    db.session.commit()
    return agent


def delete_agent(agent_id: str) -> None:
    """Delete an agent; refused (409 `in_use`) while an app integration is bound to it."""
    from app.services.integrations import integrations_using

    agent = get_agent(agent_id)
    users = integrations_using(agent.id)
    if users:
        raise Conflict(
            f"Agent {agent.name} is used by app integrations: {', '.join(users)}.",
            code="in_use",
            details={"integrations": users},
        )
    from app.services import agent_notes

    note_ids = agent_notes.note_ids(agent.id)
    db.session.delete(agent)
    db.session.commit()
    agent_notes.unindex(note_ids)  # the rows went with the agent (CASCADE); their index entries go now


def check_chat_model(reference: str) -> LlmModel:
    """The model an agent names (id, name or provider model id) must be a chat model (422 naming it)."""
    return llm_models.resolve_model(reference, "chat", "model_id")


def _default_chat_model() -> LlmModel:
    model = llm_models.default_model("chat")
    if model is None:
        raise ValidationFailed(
            "No model_id was given and no default chat model is configured.",
            code="no_default_model",
            details={"fields": {"model_id": ["required: there is no default chat model"]}},
        )
    return model


def resolve_tools(tool_ids: list[str]) -> list[Any]:
    """The tool rows for these ids, in order; 422 listing duplicates or ids that match no tool.

    The agent runtime uses this to load an agent's tools; the prefix says which table to look in.
    Built-in tools (BUILTIN_TOOLS) have no row: they are accepted and left out of the result.
    """
    duplicates = sorted(tid for tid, count in Counter(tool_ids).items() if count > 1)
    if duplicates:
        raise ValidationFailed(
            f"Tools are listed more than once: {', '.join(duplicates)}.",
            details={"duplicate_tools": duplicates},
        )
    tool_ids = [tool_id for tool_id in tool_ids if tool_id not in BUILTIN_TOOLS]
    wanted: dict[Any, list[str]] = {}
    for tool_id in tool_ids:
        table = TOOL_TABLES.get(tool_id.split("_", 1)[0]) if "_" in tool_id else None
        if table is not None:
            wanted.setdefault(table, []).append(tool_id)
    found: dict[str, Any] = {}
    for table, ids in wanted.items():
        for row in db.session.execute(select(table).where(table.id.in_(ids))).scalars():
            found[row.id] = row
    unknown = [tool_id for tool_id in tool_ids if tool_id not in found]
    if unknown:
        raise ValidationFailed(
            f"These tools do not exist: {', '.join(unknown)}.", details={"unknown_tools": unknown}
        )
    return [found[tool_id] for tool_id in tool_ids]


def _check_name_free(name: str, exclude_id: str | None = None) -> None:
    query = select(Agent.id).where(Agent.name == name)
    if exclude_id:
        query = query.where(Agent.id != exclude_id)
    if db.session.execute(query).first():
        raise Conflict(f"An agent named '{name}' already exists.", code="duplicate_name", details={"name": name})
