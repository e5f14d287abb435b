"""What is waiting for an agent besides its tasks: the messages other agents sent it.

`GET /api/agents/{id}/heartbeat` shows `unread_messages_for(agent_id)`; a heartbeat POST or a wake queues
`process_agent_inbox`, which answers each unread message with a turn of the agent and sends the answer
back as a reply (app.services.agent_messages). This is the one place the heartbeat asks for messages.
"""
from __future__ import annotations

from app.common.queue import enqueue
from app.services import agent_messages


def unread_messages_for(agent_id: str) -> list[dict]:
    """The agent's unread messages, oldest first, as the heartbeat shows them."""
    return agent_messages.unread_messages_for(agent_id)


def queue_processing(agent_id: str) -> int:
    """Queue the answering of the agent's unread messages on a worker; how many are waiting."""
    waiting = len(unread_messages_for(agent_id))
    if waiting:
        enqueue("process_agent_inbox", agent_id)
    return waiting
