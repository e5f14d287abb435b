"""The reviewers' side of hand-off: a queue, claim (one reviewer at a time), release, messages, complete.

Transitions are conditional UPDATEs (`... WHERE status = 'PENDING'`), so of two reviewers claiming at once
exactly one row update happens and the other gets 409, on SQLite and PostgreSQL alike; each transition
writes an event (who, when) in the same transaction.

Completing notifies the requester: the request's `updated_at` moves (visible to `since` polling at once);
a request from one of Magnet's agents gets the result appended to its conversation as a message; one with
a `webhook_url` gets a signed POST from a background job (app.services.handoff_webhooks).

The queue lists items of several kinds side by side (`kind`): `handoff` here; other kinds of review work
plug into QUEUE_KINDS with a function of the same shape.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update

from app.errors import Conflict, NotFound
from app.extensions import db
from app.ids import new_id
from app.models import Conversation, HandoffRequest, Message, utcnow
from app.services import handoff_accounts, reviews
from app.services.handoff_requests import (
    FLAG_NO_OWNER_CONTACT,
    add_message,
    events_of,
    is_overdue,
    messages_of,
    record_event,
    request_payload,
)

log = logging.getLogger(__name__)


def _handoff_items(args: dict, wanted: int) -> tuple[list[dict[str, Any]], int]:
    """Up to `wanted` hand-off items matching the filters, newest first, and how many match in all."""
    query = select(HandoffRequest)
    if args.get("status"):
        query = query.where(HandoffRequest.status.in_(args["status"]))
    if args.get("overdue") is not None:
        now = utcnow()
        late = (HandoffRequest.status != "COMPLETED") & (HandoffRequest.deadline_at <= now)
        query = query.where(late if args["overdue"] else ~late)
    total = db.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = db.session.execute(query.order_by(HandoffRequest.created_at.desc(), HandoffRequest.id.desc())
                              .limit(wanted)).scalars().all()
    accounts = handoff_accounts.accounts_by_id({r.account_id for r in rows if r.account_id})
    return [_queue_item(r, accounts.get(r.account_id)) for r in rows], total


# kind -> items(args, wanted) -> (newest `wanted` items, total). Evaluation review items are acted on at
# /api/review/items/{id} (claim, release, grade); hand-off requests at /api/review/tasks/{id}.
QUEUE_KINDS: dict[str, Callable[[dict, int], tuple[list[dict[str, Any]], int]]] = {
    "handoff": _handoff_items, "evaluation_review": reviews.queue_items}


def queue(args: dict) -> dict[str, Any]:
    """A page of review items of every requested kind, merged newest first."""
    kinds = args.get("kind") or list(QUEUE_KINDS)
    page, limit = args["page"], args["limit"]
    wanted = page * limit
    items, total = [], 0
    for kind in kinds:
        found, count = QUEUE_KINDS[kind](args, wanted)
        items += found
        total += count
    items.sort(key=lambda item: (item["created_at"], item["id"]), reverse=True)
    return {"success": True, "data": items[(page - 1) * limit: wanted],
            "pagination": {"page": page, "limit": limit, "total": total}}


def _queue_item(request: HandoffRequest, account) -> dict[str, Any]:
    return {"kind": "handoff", "id": request.id, "title": request.title, "status": request.status,
            "deadline_at": request.deadline_at, "overdue": is_overdue(request),
            "flags": [] if request.has_owner_contact else [FLAG_NO_OWNER_CONTACT],
            "requester": _requester(request, account), "claimed_by": request.claimed_by,
            "created_at": request.created_at, "updated_at": request.updated_at}


def _requester(request: HandoffRequest, account) -> dict[str, Any]:
    if account is not None:
        return {"type": "account", "id": account.id, "name": account.name}
    return {"type": "conversation", "id": request.conversation_id, "name": None}


def get_task(request_id: str) -> HandoffRequest:
    request = db.session.get(HandoffRequest, request_id)
    if request is None:
        raise NotFound(f"Review task {request_id} does not exist.", details={"id": request_id})
    return request


def task_detail(request: HandoffRequest) -> dict[str, Any]:
    account = handoff_accounts.accounts_by_id({request.account_id} if request.account_id else set())
    return {**_queue_item(request, account.get(request.account_id)), **request_payload(request),
            "kind": "handoff", "claimed_at": request.claimed_at, "completed_by": request.completed_by,
            "webhook_status": request.webhook_status, "webhook_attempts": request.webhook_attempts,
            "messages": messages_of(request.id), "events": events_of(request.id)}


def claim(request_id: str, reviewer: str) -> HandoffRequest:
    """PENDING -> IN_PROGRESS for this reviewer; 409 when another reviewer holds it or it is done."""
    now = utcnow()
    won = db.session.execute(update(HandoffRequest).where(
        HandoffRequest.id == request_id, HandoffRequest.status == "PENDING").values(
        status="IN_PROGRESS", claimed_by=reviewer, claimed_at=now, updated_at=now)).rowcount
    if won != 1:
        db.session.rollback()
        request = get_task(request_id)
        raise Conflict(f"Task {request_id} is {request.status}" +
                       (f", claimed by {request.claimed_by}." if request.status == "IN_PROGRESS" else "."),
                       code="already_claimed" if request.status == "IN_PROGRESS" else "not_pending",
                       details={"status": request.status, "claimed_by": request.claimed_by})
    record_event(request_id, "claimed", reviewer)
    db.session.commit()
    return get_task(request_id)


def release(request_id: str, reviewer: str, *, force: bool = False) -> HandoffRequest:
    """IN_PROGRESS -> PENDING; only by the reviewer who claimed it (an admin may release anyone's)."""
    conditions = [HandoffRequest.id == request_id, HandoffRequest.status == "IN_PROGRESS"]
    if not force:
        conditions.append(HandoffRequest.claimed_by == reviewer)
    done = db.session.execute(update(HandoffRequest).where(*conditions).values(
        status="PENDING", claimed_by=None, claimed_at=None, updated_at=utcnow())).rowcount
    if done != 1:
        db.session.rollback()
        request = get_task(request_id)
        raise Conflict(f"Task {request_id} is not claimed by you (status {request.status}).", code="not_claimed",
                       details={"status": request.status, "claimed_by": request.claimed_by})
    record_event(request_id, "released", reviewer)
    db.session.commit()
    return get_task(request_id)


def post_message(request_id: str, reviewer: str, content: str) -> dict[str, Any]:
    request = get_task(request_id)
    if request.status == "COMPLETED":
        raise Conflict(f"Task {request_id} is completed.", code="completed", details={"status": request.status})
    return add_message(request, "reviewer", reviewer, content)


def complete(request_id: str, reviewer: str, result: str) -> HandoffRequest:
    """IN_PROGRESS (claimed by this reviewer) -> COMPLETED with the result; then notify the requester."""
    now = utcnow()
    done = db.session.execute(update(HandoffRequest).where(
        HandoffRequest.id == request_id, HandoffRequest.status == "IN_PROGRESS",
        HandoffRequest.claimed_by == reviewer).values(
        status="COMPLETED", result=result, completed_by=reviewer, completed_at=now, updated_at=now)).rowcount
    if done != 1:
        db.session.rollback()
        request = get_task(request_id)
        raise Conflict(f"Task {request_id} must be claimed by you to complete it (status {request.status}).",
                       code="not_claimed", details={"status": request.status, "claimed_by": request.claimed_by})
    record_event(request_id, "completed", reviewer)
    request = get_task(request_id)
    if request.conversation_id:
        _answer_in_conversation(request)
    if request.webhook_url:
        request.webhook_status = "pending"
    db.session.commit()
    if request.webhook_url:  # after the commit: no transaction is open while the job is queued
        from app.services import handoff_webhooks

        handoff_webhooks.schedule(request.id)
    return request


def _answer_in_conversation(request: HandoffRequest) -> None:
    """The person's answer joins the conversation the agent handed off from, as the assistant's message:
    it shows in the conversation, the app's session history, and what the agent remembers next turn."""
    if db.session.get(Conversation, request.conversation_id) is None:
        return  # deleted since
    db.session.add(Message(id=new_id("msg"), conversation_id=request.conversation_id, role="assistant",
                           content=f"A person answered the request \"{request.title}\":\n\n{request.result}",
                           tool_calls=[], citations=[], model_name="human"))
    db.session.execute(update(Conversation).where(Conversation.id == request.conversation_id).values(
        message_count=Conversation.message_count + 1, last_message_at=utcnow()))
    record_event(request.id, "answered_in_conversation", None, {"conversation_id": request.conversation_id})
