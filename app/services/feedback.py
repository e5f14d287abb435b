"""Feedback on agents' answers (thumbs up/down, a comment), from apps and from the platform, and turning
rated answers into evaluation test cases.

One feedback per message per key: an app's integration, or a platform API key. Giving it again replaces
it. An app only reaches the messages of its own integration's conversations; another's is "not found".
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.common.pagination import paginate
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.models import Conversation, EvaluationCase, Message, MessageFeedback, utcnow
from app.services import evaluations
from app.services.integrations import authenticate_integration

MAX_FROM_CONVERSATIONS = 1000


def _message(message_id: str, conversation_id: str | None = None, integration_id: str | None = None) -> Message:
    """An assistant message (of that conversation / integration when given), or NotFound."""
    message = db.session.get(Message, message_id)
    conversation = db.session.get(Conversation, message.conversation_id) if message is not None else None
    if (message is None or conversation is None or (conversation_id and message.conversation_id != conversation_id)
            or (integration_id and conversation.integration_id != integration_id)):
        raise NotFound(f"Message {message_id} does not exist.", details={"id": message_id})
    if message.role != "assistant":
        raise ValidationFailed("Feedback is given on the agent's answers (assistant messages).",
                               code="not_an_answer", details={"fields": {"message_id": ["not an assistant message"]}})
    return message


def payload(feedback: MessageFeedback) -> dict[str, Any]:
    return {f: getattr(feedback, f) for f in ("id", "message_id", "conversation_id", "rater", "source", "rating",
                                              "comment", "comment_is_correction", "created_at", "updated_at")}


def give(message: Message, rater: str, source: str, body: dict) -> MessageFeedback:
    """Create or replace `rater`'s feedback on `message`."""
    values = {"rating": body["rating"], "comment": body.get("comment"),
              "comment_is_correction": bool(body.get("comment_is_correction"))}
    for _ in range(2):  # a concurrent first feedback from the same key may win the insert: then update it
        existing = db.session.execute(select(MessageFeedback).where(
            MessageFeedback.message_id == message.id, MessageFeedback.rater == rater)).scalar_one_or_none()
        if existing is not None:
            for key, value in values.items():
                setattr(existing, key, value)
            existing.updated_at = utcnow()
            db.session.commit()
            return existing
        feedback = MessageFeedback(message_id=message.id, conversation_id=message.conversation_id, rater=rater,
                                   source=source, **values)
        db.session.add(feedback)
        try:
            db.session.commit()
            return feedback
        except IntegrityError:
            db.session.rollback()
    raise RuntimeError("feedback could be neither inserted nor updated")  # pragma: no cover


def give_from_app(key: str | None, message_id: str, body: dict) -> MessageFeedback:
    """`POST /api/v1/messages/{id}/feedback`: the integration key rates an answer of its own conversations."""
    integration = authenticate_integration(key)
    return give(_message(message_id, integration_id=integration.id), integration.id, "app", body)


def give_from_platform(conversation_id: str, message_id: str, key_id: str | None, body: dict) -> MessageFeedback:
    return give(_message(message_id, conversation_id), key_id or "anonymous", "platform", body)


def list_feedback(args: dict, message_id: str | None = None, conversation_id: str | None = None) -> dict:
    query = select(MessageFeedback)
    if message_id:
        _message(message_id, conversation_id)
        query = query.where(MessageFeedback.message_id == message_id)
    for field in ("rating", "source", "conversation_id"):
        if args.get(field):
            query = query.where(getattr(MessageFeedback, field) == args[field])
    if args.get("agent_id"):
        query = query.join(Conversation, Conversation.id == MessageFeedback.conversation_id).where(
            Conversation.agent_id == args["agent_id"])
    page = paginate(query, MessageFeedback, args)
    return {**page, "data": [payload(f) for f in page["data"]]}


# -- test cases from conversations ---------------------------------------------------------------------


def _question_before(message: Message) -> str | None:
    """The user's message that this answer replied to: the last user message before it."""
    return db.session.execute(select(Message.content).where(
        Message.conversation_id == message.conversation_id, Message.role == "user",
        Message.created_at <= message.created_at, Message.id != message.id)
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(1)).scalar_one_or_none()


def _selected_ids(body: dict) -> list[str]:
    if body.get("message_ids"):
        return list(dict.fromkeys(body["message_ids"]))
    query = select(MessageFeedback.message_id).distinct()
    if body.get("rating"):
        query = query.where(MessageFeedback.rating == body["rating"])
    if body.get("agent_id"):
        query = query.join(Conversation, Conversation.id == MessageFeedback.conversation_id).where(
            Conversation.agent_id == body["agent_id"])
    return list(db.session.execute(query.order_by(MessageFeedback.message_id).limit(MAX_FROM_CONVERSATIONS)).scalars())


def _correction(message_id: str, corrections: dict[str, str]) -> str | None:
    if corrections.get(message_id):
        return corrections[message_id]
    return db.session.execute(select(MessageFeedback.comment).where(
        MessageFeedback.message_id == message_id, MessageFeedback.comment_is_correction.is_(True),
        func.length(MessageFeedback.comment) > 0)
        .order_by(MessageFeedback.updated_at.desc()).limit(1)).scalar_one_or_none()


def cases_from_conversations(evaluation_id: str, body: dict) -> dict[str, Any]:
    """Test cases from answered messages: the user's question as input, a reviewer's correction (given per
    message in `corrections`, or a feedback comment marked as a correction) as the expected output.
    Messages that cannot become a case are skipped, each with its reason."""
    evaluation = evaluations.get_evaluation(evaluation_id)
    if not body.get("message_ids") and not body.get("rating") and not body.get("agent_id"):
        raise ValidationFailed("Select messages: `message_ids`, or a filter (`rating`, `agent_id`).",
                               details={"fields": {"message_ids": ["message_ids or a filter required"]}})
    corrections = body.get("corrections") or {}
    cases, sources, skipped = [], [], []
    for message_id in _selected_ids(body):
        message = db.session.get(Message, message_id)
        reason = None
        if message is None:
            reason = "message not found"
        elif message.role != "assistant":
            reason = "not an assistant message"
        question = _question_before(message) if reason is None else None
        if reason is None and not (question or "").strip():
            reason = "no user question before this answer"
        correction = _correction(message_id, corrections) if reason is None else None
        if reason is None and not correction:
            reason = "no correction: give one in `corrections`, or mark a feedback comment as the correction"
        if reason:
            skipped.append({"message_id": message_id, "reason": reason})
            continue
        cases.append({"input": question, "expected_output": correction,
                      "metadata": {"source": "conversation", "conversation_id": message.conversation_id,
                                   "message_id": message.id, "original_answer": message.content[:2000]}})
        sources.append(message.id)
    created = []
    if cases:
        evaluations._store_cases(evaluation, evaluations._parse_body_cases(cases), replace=False)
        evaluation.updated_at = utcnow()
        db.session.commit()
        rows = db.session.execute(select(EvaluationCase).where(EvaluationCase.evaluation_id == evaluation.id)
                                  .order_by(EvaluationCase.ordinal.desc()).limit(len(cases))).scalars().all()
        created = [evaluations.case_payload(c) for c in reversed(rows)]
    return {"created": len(created), "test_cases": created, "skipped": skipped,
            "total": evaluations.case_count(evaluation.id)}
