"""Swarm sessions as the API sees them: create (queued on the job queue), read, list, cancel, delete.

The background work (planning, the members' turns, the synthesis, recovery) is app.services.swarm_runs;
share links are app.services.swarm_shares.

Each member agent and the coordinator work in a conversation of their own, opened when the swarm is
created (its `user_id` is `swarm:<swarm id>`). Their turns are ordinary agent turns
(app.services.turns), so they are traced, saved and metered like any other: the usage ledger's rows of a
swarm are the rows of those conversations (`ledger_cost`).
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import delete, func, or_, select

from app.common.pagination import paginate
from app.common.queue import enqueue
from app.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from app.extensions import db
from app.models import Agent, Conversation, Swarm, SwarmMember, UsageRecord, utcnow
from app.models.swarm import ACTIVE_SWARM_STATUSES
from app.services import conversations
from app.services.turns import model_of

MAX_MEMBERS = 20
MAX_ROUNDS = 10


def max_parallel_setting() -> int:
    return current_app.extensions["magnet.config"].swarm_max_parallel


# -- create ----------------------------------------------------------------------------------------------


def create_swarm(body: dict, *, api_key_id: str | None = None) -> Swarm:
    """Check the request, open the conversations, save the swarm and its first round's members, queue it."""
    members = _resolve_members(body["agents"])
    coordinator = _resolve_agent(body["coordinator"], "coordinator") if body.get("coordinator") else None
    limit = max_parallel_setting()
    max_parallel = body.get("max_parallel") or min(len(members), limit)
    if max_parallel > limit:
        raise ValidationFailed(
            f"max_parallel is {max_parallel}, above this installation's limit of {limit} "
            "(MAGNET_SWARM_MAX_PARALLEL).", details={"fields": {"max_parallel": [f"at most {limit}"]}})
    swarm = Swarm(goal=body["goal"], max_rounds=body.get("max_rounds") or 1, max_parallel=max_parallel,
                  budget_usd=body.get("budget_usd"), api_key_id=api_key_id)
    db.session.add(swarm)
    db.session.flush()
    owner = f"swarm:{swarm.id}"
    listed = []
    for position, agent in enumerate(members):
        conversation = conversations.new_conversation(agent.id, owner)
        conversation.title = conversations.title_for(f"Swarm: {body['goal']}")
        listed.append({"id": agent.id, "name": agent.name, "conversation_id": conversation.id})
        db.session.add(SwarmMember(swarm_id=swarm.id, round=1, position=position, agent_id=agent.id,
                                   agent_name=agent.name, conversation_id=conversation.id, subtask=body["goal"]))
    swarm.agents = listed
    if coordinator is not None:
        conversation = conversations.new_conversation(coordinator.id, owner)
        conversation.title = conversations.title_for(f"Swarm coordination: {body['goal']}")
        swarm.coordinator_agent_id, swarm.coordinator_name = coordinator.id, coordinator.name
        swarm.coordinator_conversation_id = conversation.id
    db.session.commit()
    swarm_id = swarm.id
    try:
        enqueue("run_swarm", swarm_id)
    except ServiceUnavailable:  # no message, no swarm: nothing is left queued forever
        db.session.rollback()
        _delete_rows(db.session.get(Swarm, swarm_id))
        db.session.commit()
        raise
    return swarm


def _resolve_members(references: list[str]) -> list[Agent]:
    if len(references) < 2:
        raise ValidationFailed("A swarm needs at least two agents.",
                               details={"fields": {"agents": ["at least 2 agents"]}})
    if len(references) > MAX_MEMBERS:
        raise ValidationFailed(f"A swarm has at most {MAX_MEMBERS} agents.",
                               details={"fields": {"agents": [f"at most {MAX_MEMBERS} agents"]}})
    found = {ref: _find_agent(ref) for ref in references}
    unknown = [ref for ref, agent in found.items() if agent is None]
    if unknown:
        raise ValidationFailed(f"These agents do not exist: {', '.join(unknown)}.",
                               code="unknown_agents", details={"unknown_agents": unknown,
                                                               "fields": {"agents": ["unknown agents"]}})
    agents = [found[ref] for ref in references]
    ids = [agent.id for agent in agents]
    duplicates = sorted({agent.name for agent in agents if ids.count(agent.id) > 1})
    if duplicates:
        raise ValidationFailed(f"Agents are listed more than once: {', '.join(duplicates)}.",
                               details={"duplicate_agents": duplicates,
                                        "fields": {"agents": ["each agent once"]}})
    for agent in agents:
        _check_usable(agent)
    return agents


def _resolve_agent(reference: str, field: str) -> Agent:
    agent = _find_agent(reference)
    if agent is None:
        raise ValidationFailed(f"Agent {reference} does not exist.", code="unknown_agents",
                               details={"unknown_agents": [reference], "fields": {field: ["unknown agent"]}})
    _check_usable(agent)
    return agent


def _find_agent(reference: str) -> Agent | None:
    """An agent by id or by name."""
    return db.session.get(Agent, reference) or db.session.execute(
        select(Agent).where(Agent.name == reference)).scalar_one_or_none()


def _check_usable(agent: Agent) -> None:
    if agent.status == "inactive":
        raise Conflict(f"Agent {agent.name} is inactive.", code="agent_inactive", details={"agent_id": agent.id})
    model_of(agent)  # 409 no_model: refused now rather than as a failed member later


# -- read --------------------------------------------------------------------------------------------------


def get_swarm(swarm_id: str) -> Swarm:
    swarm = db.session.get(Swarm, swarm_id)
    if swarm is None:
        raise NotFound(f"Swarm {swarm_id} does not exist.", details={"id": swarm_id})
    return swarm


def list_swarms(args: dict) -> dict:
    query = select(Swarm)
    if args.get("status"):
        query = query.where(Swarm.status == args["status"])
    if args.get("agent"):
        agent = args["agent"]
        members = select(SwarmMember.swarm_id).where(or_(SwarmMember.agent_id == agent,
                                                         SwarmMember.agent_name == agent))
        query = query.where(or_(Swarm.id.in_(members), Swarm.coordinator_agent_id == agent,
                                Swarm.coordinator_name == agent))
    page = paginate(query, Swarm, args)
    page["data"] = [payload(swarm, with_members=False) for swarm in page["data"]]
    return page


def members_of(swarm_id: str) -> list[SwarmMember]:
    return list(db.session.execute(select(SwarmMember).where(SwarmMember.swarm_id == swarm_id)
                                   .order_by(SwarmMember.round, SwarmMember.position)).scalars())


def member_progress(member: SwarmMember) -> float:
    """0 before it starts, 0.5 while its turn runs, 1 once it has ended (whichever way)."""
    return {"pending": 0.0, "running": 0.5}.get(member.status, 1.0)


def progress(swarm: Swarm, members: list[SwarmMember]) -> dict[str, Any]:
    """Members ended of all the swarm may run (every agent in every round)."""
    total = len(swarm.agents or []) * swarm.max_rounds
    ended = sum(1 for m in members if member_progress(m) == 1.0)
    return {"round": max((m.round for m in members), default=1), "rounds_total": swarm.max_rounds,
            "rounds_done": swarm.rounds_done, "members_total": total, "members_done": ended,
            "members_failed": sum(1 for m in members if m.status == "failed"),
            "percent": 100.0 if swarm.status not in ACTIVE_SWARM_STATUSES else round(100.0 * ended / total, 1)}


def member_payload(member: SwarmMember) -> dict[str, Any]:
    return {"id": member.id, "round": member.round, "position": member.position, "agent_id": member.agent_id,
            "agent_name": member.agent_name, "conversation_id": member.conversation_id,
            "subtask": member.subtask, "status": member.status, "progress": member_progress(member),
            "result": member.result, "error": member.error, "cost": member.cost,
            "usage": {"prompt_tokens": member.prompt_tokens, "completion_tokens": member.completion_tokens},
            "started_at": member.started_at, "finished_at": member.finished_at}


def payload(swarm: Swarm, *, with_members: bool = True) -> dict[str, Any]:
    members = members_of(swarm.id)
    data = {name: getattr(swarm, name) for name in (
        "id", "goal", "coordinator_agent_id", "coordinator_name", "coordinator_conversation_id", "max_rounds",
        "max_parallel", "budget_usd", "status", "stop_reason", "message", "cost", "synthesis", "synthesis_by",
        "citations", "cancel_requested", "created_at", "updated_at", "started_at", "finished_at")}
    data["agents"] = swarm.agents or []
    data["usage"] = {"prompt_tokens": swarm.prompt_tokens, "completion_tokens": swarm.completion_tokens}
    data["progress"] = progress(swarm, members)
    if with_members:
        data["members"] = [member_payload(m) for m in members]
    return data


def conversation_ids(swarm: Swarm) -> list[str]:
    ids = [a["conversation_id"] for a in swarm.agents or []]
    return ids + ([swarm.coordinator_conversation_id] if swarm.coordinator_conversation_id else [])


def ledger_cost(swarm: Swarm) -> float:
    """What the usage ledger holds for the swarm: the rows of its conversations."""
    total = db.session.execute(select(func.coalesce(func.sum(UsageRecord.cost), 0.0))
                               .where(UsageRecord.conversation_id.in_(conversation_ids(swarm)))).scalar_one()
    return round(float(total), 10)


# -- cancel and delete ---------------------------------------------------------------------------------------


def cancel_swarm(swarm_id: str) -> Swarm:
    """A queued swarm ends at once; a running one starts no further member, round or synthesis (its worker
    sees the request within a second); turns already running end and are kept."""
    swarm = get_swarm(swarm_id)
    if swarm.status not in ACTIVE_SWARM_STATUSES:
        raise Conflict(f"Swarm {swarm_id} has already ended ({swarm.status}).", code="swarm_finished",
                       details={"status": swarm.status})
    swarm.cancel_requested = True
    if swarm.status == "queued":
        swarm.status, swarm.stop_reason, swarm.finished_at = "cancelled", "cancelled", utcnow()
        swarm.message = "Cancelled before it started."
        for member in members_of(swarm.id):
            member.status, member.error = "cancelled", {"code": "cancelled", "message": "The swarm was cancelled."}
    db.session.commit()
    return swarm


def delete_swarm(swarm_id: str) -> None:
    """Delete a swarm with its members, share links and conversations (409 while it is active). The
    ledger keeps its rows: it outlives what it mentions."""
    swarm = get_swarm(swarm_id)
    if swarm.status in ACTIVE_SWARM_STATUSES:
        raise Conflict(f"Swarm {swarm_id} is {swarm.status}; cancel it first.", code="swarm_in_progress",
                       details={"status": swarm.status})
    _delete_rows(swarm)
    db.session.commit()


def _delete_rows(swarm: Swarm | None) -> None:
    if swarm is None:
        return
    ids = conversation_ids(swarm)
    if ids:
        db.session.execute(delete(Conversation).where(Conversation.id.in_(ids)))
    db.session.delete(swarm)
