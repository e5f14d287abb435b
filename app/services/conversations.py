"""Conversations with agents: open, list, read (with messages) and clear them.

Sending a message, the agent's turn, lives in app.services.turns.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from app.common.pagination import paginate
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import Conversation, ConversationAttachment, Message
from app.services import agents
from app.services.leases import Lease

TITLE_CHARS = 120


def list_conversations(args: dict) -> dict:
    query = select(Conversation)
    for name in ("agent_id", "user_id", "integration_id"):
        if args.get(name):
            query = query.where(getattr(Conversation, name) == args[name])
    return paginate(query, Conversation, args)


def get_conversation(conversation_id: str) -> Conversation:
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"Conversation {conversation_id} does not exist.", details={"id": conversation_id})
    return conversation


def create_conversation(agent_id: str, user_id: str | None = None) -> Conversation:
    conversation = new_conversation(agents.get_agent(agent_id).id, user_id)
    db.session.commit()
    return conversation


def new_conversation(agent_id: str, user_id: str | None = None, *, integration_id: str | None = None,
                     session_id: str | None = None) -> Conversation:
    """A conversation added to the session and flushed (its row exists for the messages that refer to
    it) but not committed: the caller's transaction decides whether it is kept."""
    conversation = Conversation(agent_id=agent_id, user_id=user_id, integration_id=integration_id,
                                session_id=session_id)
    db.session.add(conversation)
    db.session.flush()
    return conversation


def with_messages(conversation: Conversation) -> dict[str, Any]:
    """The conversation with its messages (oldest first) and attachments, as the API shows it."""
    messages = db.session.execute(
        select(Message).where(Message.conversation_id == conversation.id).order_by(Message.created_at, Message.id)
    ).scalars().all()
    return {**_fields(conversation), "messages": [message_payload(m) for m in messages],
            "attachments": [attachment_payload(a) for a in attachments_of(conversation.id)]}


def list_messages(conversation_id: str, args: dict) -> dict:
    """A page of a conversation's messages (a long conversation need not be read whole)."""
    get_conversation(conversation_id)
    query = select(Message).where(Message.conversation_id == conversation_id)
    if args.get("role"):
        query = query.where(Message.role == args["role"])
    page = paginate(query, Message, args)
    page["data"] = [message_payload(m) for m in page["data"]]
    return page


def _fields(conversation: Conversation) -> dict[str, Any]:
    names = ("id", "agent_id", "user_id", "integration_id", "session_id", "title", "message_count",
             "last_message_at", "created_at", "updated_at")
    return {name: getattr(conversation, name) for name in names}


def message_payload(message: Message) -> dict[str, Any]:
    return {
        "id": message.id, "conversation_id": message.conversation_id, "role": message.role,
        "content": message.content, "tool_calls": message.tool_calls or [], "citations": message.citations or [],
        "status": message.status, "error": message.error, "no_answer": message.no_answer,
        "model": message.model_name, "latency_ms": message.latency_ms, "created_at": message.created_at,
        "timestamp": message.created_at,  # the contract's name for it
        "usage": {"prompt_tokens": message.prompt_tokens, "completion_tokens": message.completion_tokens,
                  "total_tokens": message.prompt_tokens + message.completion_tokens, "cost": message.cost},
    }


def attachments_of(conversation_id: str) -> list[ConversationAttachment]:
    return list(db.session.execute(
        select(ConversationAttachment).where(ConversationAttachment.conversation_id == conversation_id)
        .order_by(ConversationAttachment.created_at, ConversationAttachment.id)).scalars())


def attachment_payload(attachment: ConversationAttachment) -> dict[str, Any]:
    return {"id": attachment.id, "filename": attachment.filename, "content_type": attachment.content_type,
            "size_bytes": attachment.size_bytes, "tokens": attachment.tokens, "message_id": attachment.message_id}


def turn_lease(conversation_id: str, refusal: str) -> Lease:
    """The conversation's turn lease, taken: one turn at a time (app.services.turns holds it from saving the
    question to saving the answer). 409 turn_in_progress, with `refusal` as its message, while it is held."""
    lease = Lease("turn", conversation_id)
    if not lease.acquire():
        raise Conflict(refusal, code="turn_in_progress", details={"conversation_id": conversation_id})
    return lease


def clear_history(conversation_id: str) -> int:
    """Forget the messages and attachments (the agent starts afresh); the conversation stays, and so do
    the usage ledger rows its turns wrote. Returns how many messages were removed.

    Refused while a turn runs, which would then save its answer without the question; the turn lease is
    held meanwhile, so no turn starts while the history goes."""
    conversation = get_conversation(conversation_id)
    lease = turn_lease(conversation.id, "This conversation is still answering a message; clear its history "
                                        "when the answer is saved.")
    try:
        return _forget_history(conversation)
    finally:
        lease.release()


def _forget_history(conversation: Conversation) -> int:
    removed = db.session.execute(delete(Message).where(Message.conversation_id == conversation.id)).rowcount
    db.session.execute(delete(ConversationAttachment).where(ConversationAttachment.conversation_id == conversation.id))
    # As if no message had been sent: the list's "last active" and the counts start again with the next turn.
    conversation.message_count = 0
    conversation.last_message_at = None
    conversation.title = None
    db.session.commit()
    return removed or 0


def title_for(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
