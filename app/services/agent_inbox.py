"""What is waiting for an agent besides its tasks: the messages other agents sent it.

`GET /api/agents/{id}/heartbeat` shows `unread_messages_for(agent_id)`. Messages between agents live in
their own service; this is the one place the heartbeat asks for them, so wiring them in changes nothing
else. Until that service exists an agent has no messages.
"""
from __future__ import annotations


def unread_messages_for(agent_id: str) -> list[dict]:
    """The agent's unread messages, oldest first, as the heartbeat shows them."""
    return []
