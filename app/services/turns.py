"""Sending a message to a conversation: the agent's turn, saved and metered, whole or streamed.

`prepare` does everything that can be refused with an ordinary error status (unknown conversation,
inactive agent, a model that cannot be called, bad attachments) and saves the user's message. `execute`
runs the turn (app.runtime.agent) and saves the answer, or the error that ended the turn, as the
assistant's message. Every ledger row written meanwhile (the agent's model calls, its tools, their
answers and embeddings) is tagged with the conversation and integration, and their sum is the message's
usage (app.services.usage.Tally).

`stream` runs the turn in a thread of its own and relays its events as SSE: a client that disconnects
stops receiving, but the turn goes on and is saved all the same.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from app.errors import Conflict, MagnetError, UpstreamTimeout, ValidationFailed
from app.extensions import db
from app.ids import new_id
from app.models import Agent, Conversation, ConversationAttachment, LlmModel, Message, utcnow
from app.runtime import memory
from app.runtime.agent import CITE_INSTRUCTION, Limits, Passage, TurnInput, TurnResult, run_turn
from app.runtime.llm_types import ChatMessage
from app.runtime.providers import DEFAULT_TIMEOUT, client_for
from app.services import agent_tools, agents, conversations
from app.services.leases import Lease
from app.services.sse import DONE, sse_event
from app.services.usage import Tally, metering, record_usage
from knowledge.tokenizer import encode, get_encoding

log = logging.getLogger(__name__)

VERBOSITY_EVENTS = {
    "minimal": {"session.created", "message.started", "text.chunk", "message.completed", "error"},
}
VERBOSITY_EVENTS["standard"] = VERBOSITY_EVENTS["minimal"] | {"tool.started", "tool.completed"}
VERBOSITY_EVENTS["full"] = VERBOSITY_EVENTS["standard"] | {"tool.progress", "thinking.chunk"}
KEEPALIVE_SECONDS = 15.0  # an SSE comment this often keeps proxies from closing a quiet stream
ATTACHMENT_PASSAGE_CHARS = 1500
ATTACHMENT_SHARE_OF_WINDOW = 3  # attachments may fill at most a third of the context window
HISTORY_NOTE_MESSAGES = 10  # loaded beyond what memory keeps, so its note can say what was asked
_END = object()


@dataclass(frozen=True)
class PreparedTurn:
    conversation_id: str
    agent_id: str
    user_message_id: str
    assistant_message_id: str
    content: str
    api_key_id: str | None = None
    integration_id: str | None = None
    attachments: list[dict] = field(default_factory=list)  # those sent with this message, as shown
    user_id: str | None = None  # the signed-in user who sent it (None for a key or an integration)
    # Held from `prepare` to the end of `execute`: one turn at a time per conversation, or two answers
    # would be written from the same memory and interleave.
    lease: Lease | None = field(default=None, compare=False, repr=False)


class TurnFailed(Exception):
    """The turn ended with `error`; the failed assistant message is saved as `message`."""

    def __init__(self, error: MagnetError, message: dict):
        super().__init__(error.message)
        self.error, self.message = error, message


def prepare(conversation: Conversation, content: str, *, api_key_id: str | None = None,
            integration_id: str | None = None, attachments: list | None = None,
            user_id: str | None = None) -> PreparedTurn:
    """Check the turn can run and save the user's message (and its attachments' text)."""
    agent = agents.get_agent(conversation.agent_id)
    if agent.status == "inactive":
        raise Conflict(f"Agent {agent.name} is inactive.", code="agent_inactive", details={"agent_id": agent.id})
    client_for(model_of(agent))  # a model that cannot be called is refused now, not mid-stream
    lease = conversations.turn_lease(conversation.id, "This conversation is still answering an earlier "
                                                      "message; send the next one when it has finished.")
    try:
        user_message_id = _save_user_message(conversation, content, attachments or [])
    except BaseException:
        lease.release()
        raise
    shown = [{"filename": a.filename, "content_type": a.content_type, "size_bytes": a.size_bytes,
              "tokens": a.tokens} for a in attachments or []]
    return PreparedTurn(conversation.id, agent.id, user_message_id, new_id("msg"), content, api_key_id,
                        integration_id, shown, user_id, lease)


def _save_user_message(conversation: Conversation, content: str, attachments: list) -> str:
    user = Message(id=new_id("msg"), conversation_id=conversation.id, role="user", content=content)
    db.session.add(user)
    for item in attachments:
        db.session.add(ConversationAttachment(conversation_id=conversation.id, message_id=user.id,
                                              filename=item.filename, content_type=item.content_type,
                                              size_bytes=item.size_bytes, text=item.text, tokens=item.tokens))
    if not conversation.title:
        conversation.title = conversations.title_for(content)
    _count_message(conversation.id)
    db.session.commit()
    return user.id


def model_of(agent: Agent) -> LlmModel:
    model = db.session.get(LlmModel, agent.model_id) if agent.model_id else None
    if model is None:
        raise Conflict(f"Agent {agent.name} has no chat model.", code="no_model", details={"agent_id": agent.id})
    return model


def _count_message(conversation_id: str) -> None:
    # One UPDATE, so two turns finishing together both count.
    db.session.execute(update(Conversation).where(Conversation.id == conversation_id).values(
        message_count=Conversation.message_count + 1, last_message_at=utcnow()))


def execute(turn: PreparedTurn, emit: Callable[[dict], None]) -> tuple[dict[str, Any], TurnResult]:
    """Run the turn and save the assistant's message; returns it (message_payload) with the runtime's
    result (which also has the passages the turn saw), or raises TurnFailed."""
    tally, started = Tally(), time.monotonic()
    with metering(conversation_id=turn.conversation_id, integration_id=turn.integration_id,
                  api_key_id=turn.api_key_id, user_id=turn.user_id, tally=tally):
        try:
            try:
                request = _turn_input(turn)
                db.session.commit()  # no transaction stays open while the model and tools work
                result = run_turn(request, emit)
            except MagnetError as exc:
                db.session.rollback()
                message = _save(turn, None, exc, tally, started)
                raise TurnFailed(exc, message) from None
            return _save(turn, result, None, tally, started), result
        finally:  # after the answer is saved, so the next turn remembers it
            if turn.lease is not None:
                turn.lease.release()


def _turn_input(turn: PreparedTurn) -> TurnInput:
    agent = agents.get_agent(turn.agent_id)
    model = model_of(agent)
    local = model.provider == "local"
    tools = agent_tools.build(agent, api_key_id=turn.api_key_id, local=local)
    window = model.context_window or memory.DEFAULT_CONTEXT_WINDOW
    passages = _attachment_passages(turn.conversation_id, budget_tokens=window // ATTACHMENT_SHARE_OF_WINDOW)
    history, older = _history(turn, agent.memory_messages)
    fitted = memory.fit(_system(agent, tools, passages), history, ChatMessage(role="user", content=turn.content),
                        max_messages=agent.memory_messages, context_window=window,
                        reserve_tokens=memory.answer_reserve(agent.max_tokens, window),
                        tools=[t.spec for t in tools], older=older)
    if not fitted.fits:
        raise ValidationFailed(
            f"The message is too long for {model.name}'s context window: the prompt needs about "
            f"{fitted.prompt_tokens} tokens with the agent's instructions and tools, and {fitted.budget} fit. "
            "Send a shorter message.",
            code="context_window_exceeded",
            details={"prompt_tokens": fitted.prompt_tokens, "budget_tokens": fitted.budget,
                     "context_window": window})
    limits = Limits(max_iterations=agent.max_iterations, tool_timeout=agent.tool_timeout_seconds,
                    turn_timeout=agent.turn_timeout_seconds,
                    model_timeout=min(DEFAULT_TIMEOUT, agent.turn_timeout_seconds))
    return TurnInput(messages=fitted.messages, query=turn.content, tools=tools, client=client_for(model),
                     limits=limits, prompt_budget=fitted.budget, temperature=agent.temperature,
                     max_tokens=agent.max_tokens, local=local,
                     passages=passages, on_model_call=_meter(agent.id, model.id))


def _meter(agent_id: str, model_id: str):
    def on_model_call(result) -> None:
        record_usage(entity_type="agent", entity_id=agent_id, operation="chat",
                     model=db.session.get(LlmModel, model_id), usage=result.usage, latency_ms=result.latency_ms,
                     details={"usage_estimated": result.usage_estimated, "finish_reason": result.finish_reason})
    return on_model_call


def _system(agent: Agent, tools: list, passages: list[Passage]) -> list[ChatMessage]:
    parts = [agent.system_prompt or f"You are {agent.name}, a helpful assistant."]
    if agent.role:
        parts.append(f"Your role: {agent.role}")
    if tools or passages:
        parts.append(CITE_INSTRUCTION)
    if passages:
        listed = "\n\n".join(f"[{n}] ({p.source})\n{p.text}" for n, p in enumerate(passages, start=1))
        parts.append(f"The user attached files to this conversation; their text, numbered for citing:\n\n{listed}")
    return [ChatMessage(role="system", content="\n\n".join(parts))]


def _history(turn: PreparedTurn, limit: int) -> tuple[list[ChatMessage], int]:
    """Recent earlier messages, oldest first (the user's, and the agent's answers: failed turns are left
    out), enough for memory to keep `limit` and name what it drops; and how many older ones exist."""
    earlier = (Message.conversation_id == turn.conversation_id, Message.id != turn.user_message_id)
    rows = db.session.execute(select(Message).where(*earlier).order_by(Message.created_at.desc(), Message.id.desc())
                              .limit(limit + HISTORY_NOTE_MESSAGES)).scalars().all()
    total = db.session.execute(select(func.count()).select_from(Message).where(*earlier)).scalar_one()
    usable = [ChatMessage(role=m.role, content=m.content) for m in reversed(rows)
              if m.role == "user" or (m.status == "completed" and m.content)]
    return usable, total - len(rows)


def _attachment_passages(conversation_id: str, *, budget_tokens: int) -> list[Passage]:
    """The conversation's attachments cut into citable passages, up to a share of the context window
    (counted in tokens: in characters, a page of Chinese or code is several times over)."""
    passages, used = [], 0
    for attachment in conversations.attachments_of(conversation_id):
        text = attachment.text
        for start in range(0, len(text), ATTACHMENT_PASSAGE_CHARS):
            piece = text[start:start + ATTACHMENT_PASSAGE_CHARS].strip()
            if not piece:
                continue
            tokens = encode(piece)
            if used + len(tokens) > budget_tokens:  # what still fits of this piece ends the attachments
                # Decoded at a token boundary, which may split a character: drop the half.
                rest = get_encoding().decode(tokens[: budget_tokens - used]).rstrip("\ufffd").strip()
                if rest:
                    passages.append(Passage(text=rest, source=attachment.filename, title=attachment.filename))
                return passages
            used += len(tokens)
            passages.append(Passage(text=piece, source=attachment.filename, title=attachment.filename))
    return passages


def _save(turn: PreparedTurn, result: TurnResult | None, error: MagnetError | None, tally: Tally,
          started: float) -> dict[str, Any]:
    message = Message(id=turn.assistant_message_id, conversation_id=turn.conversation_id, role="assistant",
                      prompt_tokens=tally.prompt_tokens, completion_tokens=tally.completion_tokens, cost=tally.cost,
                      latency_ms=round((time.monotonic() - started) * 1000, 1))
    if result is not None:
        message.content = result.content
        message.no_answer = result.no_answer
        message.tool_calls, message.citations, message.model_name = result.tool_calls, result.citations, result.model
    else:
        message.status = "timeout" if isinstance(error, UpstreamTimeout) else "failed"
        message.error = {"code": error.code, "message": error.message}
    db.session.add(message)
    _count_message(turn.conversation_id)
    db.session.commit()
    return conversations.message_payload(message)


def run(turn: PreparedTurn) -> dict[str, Any]:
    """The whole turn, answered at once; raises the turn's error (after saving it)."""
    try:
        return execute(turn, lambda event: None)[0]
    except TurnFailed as failed:
        raise failed.error from None


def stream(turn: PreparedTurn, *, verbosity: str, shape: Callable[[dict], dict],
           opening: list[dict] | None = None) -> Iterator[str]:
    """SSE of the turn: `opening` events, message.started, the turn's events, then message.completed
    (`shape(message)`) or error, then `data: [DONE]`. Events are filtered by `verbosity`."""
    events: queue.Queue = queue.Queue()
    app = current_app._get_current_object()
    wanted = VERBOSITY_EVENTS[verbosity]

    def work() -> None:
        with app.app_context():
            try:
                message, _ = execute(turn, events.put)
                events.put({"event": "message.completed", "message_id": message["id"], **shape(message)})
            except TurnFailed as failed:
                events.put({"event": "error", "code": failed.error.code, "message": failed.error.message,
                            "message_id": turn.assistant_message_id})
            except Exception:  # the stream must end with an error event, whatever broke
                log.exception("agent turn %s failed", turn.assistant_message_id)
                events.put({"event": "error", "code": "internal_error", "message": "The turn could not be completed.",
                            "message_id": turn.assistant_message_id})
            finally:
                events.put(_END)

    # Started now, not on the first read: the turn runs (and is saved) even if nobody reads the stream.
    threading.Thread(target=work, name=f"turn-{turn.assistant_message_id}", daemon=True).start()
    started = {"event": "message.started", "id": turn.assistant_message_id, "message_id": turn.assistant_message_id,
               "conversation_id": turn.conversation_id, "user_message_id": turn.user_message_id}

    def relay() -> Iterator[str]:
        for event in [*(opening or []), started]:
            yield sse_event(event)
        while True:
            try:
                event = events.get(timeout=KEEPALIVE_SECONDS)
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            if event is _END:
                break
            if event["event"] in wanted:
                yield sse_event(event)
        yield DONE

    return relay()
