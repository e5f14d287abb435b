"""An agent's soul: its system prompt, versioned like prompt templates.

Every change of the prompt (PUT /soul, an agent update, a sync) adds a version; the agent row keeps the
latest text, which is what its turns use. Versions are never changed afterwards.
"""
from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Agent, AgentSoulVersion


def record(agent: Agent) -> AgentSoulVersion | None:
    """Add a version for the agent's current prompt unless the latest version already has it (the
    caller commits). The agent must be flushed (it needs its id)."""
    latest = latest_version(agent.id)
    if latest is not None and latest.system_prompt == agent.system_prompt:
        return None
    version = AgentSoulVersion(agent_id=agent.id, version=(latest.version + 1) if latest else 1,
                               system_prompt=agent.system_prompt)
    db.session.add(version)
    return version


def latest_version(agent_id: str) -> AgentSoulVersion | None:
    return db.session.execute(select(AgentSoulVersion).where(AgentSoulVersion.agent_id == agent_id)
                              .order_by(AgentSoulVersion.version.desc()).limit(1)).scalar_one_or_none()


def soul_of(agent_id: str) -> dict:
    """The current prompt, its version number and every version, newest first."""
    from app.services.agents import get_agent

    agent = get_agent(agent_id)
    versions = db.session.execute(select(AgentSoulVersion).where(AgentSoulVersion.agent_id == agent.id)
                                  .order_by(AgentSoulVersion.version.desc())).scalars().all()
    return {"agent_id": agent.id, "system_prompt": agent.system_prompt,
            "version": versions[0].version if versions else 0, "versions": versions}


def put_soul(agent_id: str, system_prompt: str) -> dict:
    """Set the agent's prompt; a different text becomes the next version, the same text changes nothing."""
    from app.services.agents import get_agent

    # Row lock (PostgreSQL): two concurrent PUTs must not both claim version N+1.
    agent = db.session.get(Agent, get_agent(agent_id).id, with_for_update=True)
    agent.system_prompt = system_prompt
    record(agent)
    db.session.commit()
    return soul_of(agent.id)


def version_count(agent_id: str) -> int:
    return db.session.execute(select(func.count()).select_from(AgentSoulVersion)
                              .where(AgentSoulVersion.agent_id == agent_id)).scalar_one()
