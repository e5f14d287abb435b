"""Agents as code: a document `{"agents": [...]}` that creates or updates agents by name, and its export.

Entries name things the way people write them: the model by name, tools by name (a built-in tool by its
own name; `rag:NAME`, `retrieval:NAME` or `api:NAME` when two kinds share a name), `reports_to` by agent
name, the prompt as `system_prompt` or `soul`. Every entry is checked, against the database and the rest
of the document, before anything changes; then all changes are one transaction. A field an entry leaves
out keeps its value (a new agent gets the usual default). The export writes the same format, so an export
synced back changes nothing.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.errors import ValidationFailed
from app.extensions import db
from app.models import Agent, ApiTool, LlmModel, RagTool, RetrievalTool
from app.services import agent_soul, agents

FIELDS = ("description", "role", "system_prompt", "temperature", "max_tokens", "topics", "status",
          "max_iterations", "tool_timeout_seconds", "turn_timeout_seconds", "memory_messages")
KINDS = {"rag": RagTool, "retrieval": RetrievalTool, "api": ApiTool}


def export_document() -> dict:
    """Every agent as a sync entry, by name, sorted by name."""
    names = dict(db.session.execute(select(Agent.id, Agent.name)).all())
    models = dict(db.session.execute(select(LlmModel.id, LlmModel.name)).all())
    tool_names = _tool_names()
    entries = []
    for agent in db.session.execute(select(Agent).order_by(Agent.name)).scalars():
        entry: dict[str, Any] = {"name": agent.name}
        entry.update({field: getattr(agent, field) for field in FIELDS})
        entry["model"] = models.get(agent.model_id)
        entry["tools"] = [tool_names.get(t, t) for t in agent.tools or []]
        entry["reports_to"] = names.get(agent.reports_to) if agent.reports_to else None
        entries.append(entry)
    return {"agents": entries}


def sync_document(document: dict) -> dict:
    """Create or update the document's agents; `{synced, created, updated, unchanged}` (names), or 422
    naming each bad entry and field with nothing changed."""
    entries = document.get("agents") or []
    existing = {a.name: a for a in db.session.execute(select(Agent)).scalars()}
    problems: dict[str, list[str]] = {}
    plans = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"agents[{i}] ({entry.get('name')})"
        if entry["name"] in seen:
            problems[f"{where}.name"] = ["listed twice"]
            continue
        seen.add(entry["name"])
        plans.append(_plan(entry, existing.get(entry["name"]), where, problems))
    _check_reports(plans, existing, problems)
    if problems:
        raise ValidationFailed(
            "The agents document is not valid; nothing was changed: "
            + "; ".join(f"{k}: {v[0]}" for k, v in problems.items()),
            details={"fields": problems})
    return _apply(plans, existing)


def _plan(entry: dict, agent: Agent | None, where: str, problems: dict) -> dict:
    values = {field: entry[field] for field in FIELDS if field in entry}
    if "soul" in entry:
        if "system_prompt" in entry and entry["system_prompt"] != entry["soul"]:
            problems[f"{where}.soul"] = ["give system_prompt or soul, not two different prompts"]
        values["system_prompt"] = entry["soul"]
    if entry.get("model") is not None:
        try:
            values["model_id"] = agents.check_chat_model(entry["model"]).id
        except ValidationFailed as exc:
            problems[f"{where}.model"] = [exc.message]
    elif agent is None:
        default = db.session.execute(select(LlmModel).where(LlmModel.kind == "chat", LlmModel.is_default.is_(True))
                                     ).scalar_one_or_none()
        if default is None:
            problems[f"{where}.model"] = ["required: there is no default chat model"]
        else:
            values["model_id"] = default.id
    if "tools" in entry:
        values["tools"] = _tool_ids(entry["tools"], f"{where}.tools", problems)
    return {"name": entry["name"], "agent": agent, "values": values, "reports_to": entry.get("reports_to"),
            "sets_reports_to": "reports_to" in entry, "where": where}


def _tool_ids(references: list[str], where: str, problems: dict) -> list[str]:
    ids, bad = [], []
    for reference in references:
        if reference in agents.BUILTIN_TOOLS:
            ids.append(reference)
            continue
        kind, _, name = reference.partition(":") if reference.split(":", 1)[0] in KINDS else ("", "", reference)
        tables = [KINDS[kind]] if kind else list(KINDS.values())
        found = [row.id for table in tables for row in db.session.execute(
            select(table).where((table.name == name) | (table.id == name))).scalars()]
        if len(found) == 1:
            ids.append(found[0])
        else:
            bad.append(f"'{reference}' " + ("matches no tool" if not found else
                                              "names tools of several kinds: write rag:, retrieval: or api:"))
    if len(set(ids)) != len(ids):
        bad.append("a tool is listed twice")
    if bad:
        problems[where] = bad
    return ids


def _check_reports(plans: list[dict], existing: dict[str, Agent], problems: dict) -> None:
    """Every reports_to names an agent of the document or of the database, and the links after the sync
    form no cycle (links are checked by name: new agents have no id yet)."""
    links = {name: _name_of(agent.reports_to) for name, agent in existing.items()}
    for plan in plans:
        if plan["sets_reports_to"]:
            links[plan["name"]] = plan["reports_to"]
        elif plan["agent"] is None:
            links[plan["name"]] = None
    known = set(links)
    for plan in plans:
        target = plan["reports_to"]
        if not plan["sets_reports_to"] or target is None:
            continue
        if target not in known:
            problems[f"{plan['where']}.reports_to"] = [f"no agent named '{target}'"]
            continue
        chain, current = [plan["name"]], target
        while current is not None and current not in chain:
            chain.append(current)
            current = links.get(current)
        if current == plan["name"]:
            problems[f"{plan['where']}.reports_to"] = [f"makes a cycle: {' -> '.join([*chain, current])}"]


def _name_of(agent_id: str | None) -> str | None:
    if agent_id is None:
        return None
    agent = db.session.get(Agent, agent_id)
    return agent.name if agent else None


def _apply(plans: list[dict], existing: dict[str, Agent]) -> dict:
    created, updated, unchanged = [], [], []
    by_name = dict(existing)
    for plan in plans:
        agent, values = plan["agent"], plan["values"]
        if agent is None:
            agent = Agent(name=plan["name"], **values)
            db.session.add(agent)
            created.append(plan["name"])
        elif any(getattr(agent, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(agent, key, value)
            updated.append(plan["name"])
        else:
            unchanged.append(plan["name"])
        by_name[plan["name"]] = agent
    db.session.flush()
    for plan in plans:
        agent = by_name[plan["name"]]
        if plan["sets_reports_to"]:
            target = by_name[plan["reports_to"]].id if plan["reports_to"] else None
            if agent.reports_to != target:
                agent.reports_to = target
                if plan["name"] in unchanged:
                    unchanged.remove(plan["name"])
                    updated.append(plan["name"])
        agent_soul.record(agent)
    db.session.commit()
    outcomes = {**dict.fromkeys(created, "created"), **dict.fromkeys(updated, "updated"),
                **dict.fromkeys(unchanged, "unchanged")}
    return {"synced": len(plans), "created": len(created), "updated": len(updated), "unchanged": len(unchanged),
            "agents": outcomes}


def _tool_names() -> dict[str, str]:
    """Tool id -> the name an export writes: the plain name, or kind:name when kinds share the name."""
    rows = [(kind, row.id, row.name) for kind, table in KINDS.items()
            for row in db.session.execute(select(table)).scalars()]
    counts: dict[str, int] = {}
    for _, _, name in rows:
        counts[name] = counts.get(name, 0) + 1
    return {tool_id: (name if counts[name] == 1 and name not in agents.BUILTIN_TOOLS and ":" not in name
                      else f"{kind}:{name}") for kind, tool_id, name in rows}

