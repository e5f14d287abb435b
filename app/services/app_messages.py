"""`POST /api/v1/messages`: an app talks to its integration's agent, one session per conversation.

`session_id` is the client's identifier, scoped to the integration: the same id continues the same
conversation, a new one starts one (a request without it gets a Magnet-minted `sess_…` id, named in the
reply). A session continues only while the integration still uses the agent it began with. A refused
request leaves no conversation behind. Before any work: the key must be an active integration's,
and its spend today (the usage ledger rows tagged with it) must be under its daily credit limit.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import BadRequest
from app.extensions import db
from app.ids import new_id
from app.models import Conversation, Integration
from app.services import attachments, conversations, integrations, turns

# The ids Magnet mints (new_id("sess")). One of these that this integration does not hold was minted for
# another integration or never existed: refused, where any other unknown id is the client's new session.
_MINTED_SESSION = re.compile(r"sess_[0-9a-hjkmnp-tv-z]{24}")


def send(key: str | None, body: dict) -> dict[str, Any] | Iterator[str]:
    """The reply, or (with `stream`) the SSE events of the turn."""
    integration = integrations.authenticate_integration(key)
    integrations.check_daily_credit(integration)
    files = attachments.extract_attachments(body.get("attachments") or [])
    conversation, created = _session(integration, body.get("session_id"), body.get("user_id"))
    turn = _prepare(conversation, created, body["content"], integration, files)
    session_id = conversation.session_id

    def shape(message: dict) -> dict:
        return reply(message, session_id, turn.attachments)

    if body.get("stream"):
        # First on every stream (the contract's example), so a client always learns the session first;
        # `is_new` tells whether this message started it.
        opening = [{"event": "session.created", "session_id": session_id, "conversation_id": conversation.id,
                    "is_new": created}]
        return turns.stream(turn, verbosity=body["verbosity"], shape=shape, opening=opening)
    return shape(turns.run(turn))


def _session(integration: Integration, session_id: str | None, user_id: str | None) -> tuple[Conversation, bool]:
    if session_id is None:
        # Not committed: `turns.prepare` commits it with the user's message, or it never exists.
        return _open(integration, new_id("sess"), user_id), True
    conversation = _find(integration, session_id)
    if conversation is None:
        if _MINTED_SESSION.fullmatch(session_id):
            raise BadRequest(f"No session '{session_id}' exists for this integration: send no session_id, or "
                             "your own identifier for the conversation, to start one.",
                             code="invalid_request", details={"session_id": session_id})
        try:
            return _open(integration, session_id, user_id), True
        except IntegrityError:  # a concurrent first message with the same new id won the insert
            db.session.rollback()  # nothing else is pending: the integration's own writes are committed
            conversation = _find(integration, session_id)
            if conversation is None:
                raise
    if conversation.agent_id != integration.agent_id:
        # The integration was pointed at another agent since: continuing would answer with the old one.
        raise BadRequest(f"Session '{session_id}' was held with an agent this integration no longer uses: "
                         "send no session_id (or a new id of yours) to start a new session with its current agent.",
                         code="invalid_request", details={"session_id": session_id})
    return conversation, False


def _find(integration: Integration, session_id: str) -> Conversation | None:
    return db.session.execute(select(Conversation).where(
        Conversation.integration_id == integration.id, Conversation.session_id == session_id)).scalar_one_or_none()


def _open(integration: Integration, session_id: str, user_id: str | None) -> Conversation:
    return conversations.new_conversation(integration.agent_id, user_id, integration_id=integration.id,
                                          session_id=session_id)


def _prepare(conversation: Conversation, created: bool, content: str, integration: Integration,
             files: list) -> turns.PreparedTurn:
    try:
        return turns.prepare(conversation, content, integration_id=integration.id, attachments=files)
    except BaseException:
        if created:  # refused: the client never sees this session, so no empty conversation may stay
            db.session.rollback()
        raise


def reply(message: dict, session_id: str, sent_attachments: list[dict]) -> dict[str, Any]:
    """An assistant message in the app contract's shape."""
    return {
        "id": message["id"], "message_id": message["id"], "session_id": session_id, "conversation_id": message["conversation_id"],
        "content": message["content"], "citations": message["citations"], "tool_calls": message["tool_calls"],
        "attachments": sent_attachments, "created_at": message["created_at"],
        "usage": {"prompt_tokens": message["usage"]["prompt_tokens"],
                  "completion_tokens": message["usage"]["completion_tokens"]},
    }
