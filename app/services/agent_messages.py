"""Messages between agents: sent by name or id, unread until the recipient processes them.

Processing a message runs one turn of the recipient on it (app.services.agent_delegation.run_agent_once)
and sends the answer back to the sender as a `reply`. Replies are read, never answered: two agents whose
inboxes are processed by a heartbeat would otherwise answer each other's answers forever.
`unread_messages_for` and `process_unread_messages` are what a heartbeat calls.
"""
from __future__ import annotations

import logging

from sqlalchemy import or_, select, update

from app.errors import MagnetError, NotFound, ValidationFailed
from app.extensions import db
from app.models import Agent, AgentMessage, utcnow
from app.services.agent_hierarchy import resolve_agent

log = logging.getLogger(__name__)
MAX_PROCESSED_AT_ONCE = 20


def _agent(reference: str, field: str) -> Agent:
    agent = resolve_agent(reference)
    if agent is None:
        raise NotFound(f"There is no agent '{reference}'.", details={"fields": {field: [f"no agent '{reference}'"]}})
    return agent


def send(sender: str, recipient: str, content: str, type_: str = "message", *,
         in_reply_to: str | None = None) -> AgentMessage:
    """Send a message from one agent to another (each by name or id)."""
    source, target = _agent(sender, "from"), _agent(recipient, "to")
    if source.id == target.id:
        raise ValidationFailed("An agent cannot send a message to itself.",
                               details={"fields": {"to": ["same agent as 'from'"]}})
    message = AgentMessage(sender_id=source.id, recipient_id=target.id, type=type_, content=content,
                           in_reply_to=in_reply_to)
    db.session.add(message)
    db.session.commit()
    return message


def comms(agent: str | None = None, *, limit: int = 50, unread: bool | None = None) -> list[AgentMessage]:
    """Recent messages, newest first: all of them, or those an agent sent or received."""
    query = select(AgentMessage)
    if agent is not None:
        found = _agent(agent, "agent")
        query = query.where(or_(AgentMessage.sender_id == found.id, AgentMessage.recipient_id == found.id))
    if unread is not None:
        query = query.where(AgentMessage.read_at.is_(None) if unread else AgentMessage.read_at.is_not(None))
    return db.session.execute(query.order_by(AgentMessage.created_at.desc(), AgentMessage.id.desc())
                              .limit(limit)).scalars().all()


def payload(message: AgentMessage, names: dict[str, str] | None = None) -> dict:
    names = names if names is not None else agent_names()
    return {"id": message.id, "from": message.sender_id, "from_name": names.get(message.sender_id),
            "to": message.recipient_id, "to_name": names.get(message.recipient_id), "type": message.type,
            "content": message.content, "in_reply_to": message.in_reply_to, "read": message.read_at is not None,
            "read_at": message.read_at, "error": message.error, "created_at": message.created_at}


def agent_names() -> dict[str, str]:
    return dict(db.session.execute(select(Agent.id, Agent.name)).all())


def unread_messages_for(agent_id: str) -> list[dict]:
    """The agent's unread messages, oldest first, as API payloads."""
    rows = db.session.execute(select(AgentMessage).where(AgentMessage.recipient_id == agent_id,
                                                         AgentMessage.read_at.is_(None))
                              .order_by(AgentMessage.created_at, AgentMessage.id)).scalars().all()
    names = agent_names()
    return [payload(m, names) for m in rows]


def process_unread_messages(agent_id: str, *, api_key_id: str | None = None,
                            limit: int = MAX_PROCESSED_AT_ONCE) -> list[dict]:
    """Answer the agent's unread messages, oldest first: each is claimed (marked read) so that two
    processors never answer it twice, answered by one turn of the agent, and the answer is sent back to
    the sender as a reply. Returns one entry per message: its id, status (replied | read | failed),
    and the reply's id or the error."""
    agent = db.session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"Agent {agent_id} does not exist.", details={"id": agent_id})
    pending = [m["id"] for m in unread_messages_for(agent.id)][:limit]
    db.session.commit()
    return [outcome for message_id in pending if (outcome := _process(message_id, api_key_id)) is not None]


def _process(message_id: str, api_key_id: str | None) -> dict | None:
    from app.services.agent_delegation import run_agent_once
    from app.services.usage import metering

    claimed = db.session.execute(update(AgentMessage).where(AgentMessage.id == message_id,
                                                            AgentMessage.read_at.is_(None))
                                 .values(read_at=utcnow())).rowcount
    db.session.commit()
    if claimed != 1:
        return None  # another processor has it
    message = db.session.get(AgentMessage, message_id)
    if message.type == "reply":
        return {"message_id": message.id, "status": "read", "reply_id": None, "error": None}
    sender = db.session.get(Agent, message.sender_id)
    prompt = (f"Message from the agent {sender.name if sender else message.sender_id} "
              f"(type: {message.type}):\n\n{message.content}\n\nYour answer is sent back to them.")
    recipient_id, sender_id = message.recipient_id, message.sender_id
    try:
        with metering(api_key_id=api_key_id):
            result = run_agent_once(recipient_id, prompt, api_key_id=api_key_id,
                                    details={"agent_message_id": message_id})
    except MagnetError as exc:
        db.session.rollback()
        message = db.session.get(AgentMessage, message_id)
        message.error = {"code": exc.code, "message": exc.message}
        db.session.commit()
        log.info("agent message %s could not be answered: %s", message_id, exc.code)
        return {"message_id": message_id, "status": "failed", "reply_id": None, "error": message.error}
    reply = AgentMessage(sender_id=recipient_id, recipient_id=sender_id, type="reply", content=result.content,
                         in_reply_to=message_id)
    db.session.add(reply)
    db.session.commit()
    return {"message_id": message_id, "status": "replied", "reply_id": reply.id, "error": None}
