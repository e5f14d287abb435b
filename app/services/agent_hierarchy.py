"""Who reports to whom: `reports_to` on agents, kept a forest (no cycles), and its tree."""
from __future__ import annotations

from sqlalchemy import select

from app.errors import ValidationFailed
from app.extensions import db
from app.models import Agent


def resolve_agent(reference: str) -> Agent | None:
    """An agent by id or by name."""
    agent = db.session.get(Agent, reference)
    if agent is None:
        agent = db.session.execute(select(Agent).where(Agent.name == reference)).scalar_one_or_none()
    return agent


def check_manager(reference: str, agent_id: str | None, *, managers: dict[str, str | None] | None = None) -> str:
    """The id of the agent `reference` names, as the manager of `agent_id` (None: a new agent); 422 when
    it does not exist or when the chain of managers above it comes back to `agent_id`.

    `managers` (agent id -> manager id) replaces the stored links: a sync checks the links it is about
    to write all together."""
    manager = resolve_agent(reference)
    if manager is None:
        raise ValidationFailed(f"reports_to: there is no agent '{reference}'.",
                               details={"fields": {"reports_to": [f"no agent '{reference}'"]}})
    links = managers if managers is not None else _stored_links()
    chain, current = [manager.id], manager.id
    while current is not None:
        if agent_id is not None and current == agent_id:
            names = _names()
            path = " -> ".join(names.get(i, i) for i in [agent_id, *chain])
            raise ValidationFailed(f"reports_to would make a cycle: {path}.", code="hierarchy_cycle",
                                   details={"fields": {"reports_to": ["makes a cycle"]}, "cycle": [agent_id, *chain]})
        current = links.get(current)
        if current in chain:  # an existing loop above (a hand-edited database): stop walking
            break
        if current is not None:
            chain.append(current)
    return manager.id


def _stored_links() -> dict[str, str | None]:
    return dict(db.session.execute(select(Agent.id, Agent.reports_to)).all())


def _names() -> dict[str, str]:
    return dict(db.session.execute(select(Agent.id, Agent.name)).all())


def tree() -> list[dict]:
    """Every agent once, as a forest: the agents who report to nobody at the top, each with its reports,
    sorted by name."""
    agents = db.session.execute(select(Agent).order_by(Agent.name)).scalars().all()
    by_id = {a.id: {"id": a.id, "name": a.name, "role": a.role, "status": a.status, "reports": []}
             for a in agents}
    roots = []
    for agent in agents:
        node = by_id[agent.id]
        manager = by_id.get(agent.reports_to) if agent.reports_to else None
        (manager["reports"] if manager is not None else roots).append(node)
    return roots
